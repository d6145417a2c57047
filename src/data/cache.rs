//! On-disk cache of a data set's graphs, so that trials do not rebuild them.
//!
//! File layout (little-endian throughout):
//!
//! | field | bytes |
//! |---|---|
//! | magic `ANISOGRF` | 8 |
//! | format version (u32) | 4 |
//! | crate version (u16 length + UTF-8) | 2 + n |
//! | cutoff, Å (f64) | 8 |
//! | self-edges (u8) | 1 |
//! | SHA-256 of the data (file bytes, or synthetic n and seed) | 32 |
//! | SHA-256 of the reading and cleaning options | 32 |
//! | payload length (u64) | 8 |
//! | SHA-256 of the payload | 32 |
//! | payload: source name, cleaning report, graphs | … |
//!
//! A header that does not match the request (other data, cutoff, options or
//! crate version) means the cache is stale and is rebuilt; a file that cannot
//! be parsed or whose payload hash is wrong is rebuilt with a warning. The
//! file is written to a temporary name and renamed, so readers never see a
//! half-written cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::clean::CleaningReport;
use super::dataset::{load, LoadOptions, Source};
use super::graph::{build_graphs, Graph, GraphOptions};
use crate::crystal::symmetry::CrystalSystem;

const MAGIC: &[u8; 8] = b"ANISOGRF";
/// Bump when the layout or the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 1;

/// Where graphs are cached.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheOptions {
    /// Cache folder; `None` builds the graphs every time.
    pub dir: Option<PathBuf>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self { dir: Some(PathBuf::from("results/.cache")) }
    }
}

/// A cleaned data set as graphs.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSet {
    /// Human-readable name of the source.
    pub source: String,
    pub report: CleaningReport,
    pub graphs: Vec<Graph>,
}

impl GraphSet {
    /// Frame number of each graph, in graph order (for split files).
    pub fn frames(&self) -> Vec<usize> {
        self.graphs.iter().map(|g| g.frame).collect()
    }
}

/// What the cache did.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheStatus {
    /// No cache folder configured.
    Disabled,
    /// Read from this file.
    Hit(PathBuf),
    /// Built and written to this file, for this reason.
    Built(PathBuf, String),
    /// Built, but this file could not be written (the error); the graphs are fine.
    Unwritable(PathBuf, String),
}

/// The graphs of a data set, from the cache when it is current, otherwise
/// built (read, clean, neighbour lists) and cached.
pub fn load_graphs(
    source: &Source,
    load_options: &LoadOptions,
    graph_options: &GraphOptions,
    cache: &CacheOptions,
) -> Result<(GraphSet, CacheStatus)> {
    let build = || -> Result<GraphSet> {
        let dataset = load(source, load_options)?;
        let graphs = build_graphs(&dataset.entries, graph_options);
        Ok(GraphSet { source: dataset.source, report: dataset.report, graphs })
    };
    let Some(dir) = &cache.dir else {
        return Ok((build()?, CacheStatus::Disabled));
    };
    let header = Header::new(source, load_options, graph_options)?;
    let path = dir.join(cache_file_name(source, graph_options.cutoff));
    let reason = match std::fs::read(&path) {
        Err(_) => "no cache yet".to_string(),
        Ok(bytes) => match decode(&bytes, &header) {
            Ok(Some(set)) => {
                return Ok((GraphSet { source: source.to_string(), ..set }, CacheStatus::Hit(path)))
            }
            Ok(None) => "data, options or version changed".to_string(),
            Err(problem) => {
                eprintln!("warning: graph cache {} is corrupt ({problem}); rebuilding it", path.display());
                format!("corrupt cache: {problem}")
            }
        },
    };
    let set = build()?;
    if let Err(err) = write_atomically(&path, &encode(&header, &set)) {
        eprintln!("warning: cannot write the graph cache {}: {err}", path.display());
        return Ok((set, CacheStatus::Unwritable(path, err.to_string())));
    }
    Ok((set, CacheStatus::Built(path, reason)))
}

/// One cache file per source and cutoff: the file stem (or `synthetic-n-seed`),
/// a short hash of its full path and the cutoff in Å, so trials that search
/// the cutoff each keep their own graphs instead of rebuilding a shared file.
fn cache_file_name(source: &Source, cutoff: f64) -> String {
    let name = match source {
        Source::File(path) => {
            let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let hash = Sha256::digest(full.to_string_lossy().as_bytes());
            let stem = path.file_stem().map_or("data".into(), |s| s.to_string_lossy().into_owned());
            let stem: String =
                stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
            format!("{stem}-{}", hex(&hash[..6]))
        }
        Source::Synthetic { n, seed } => format!("synthetic-{n}-{seed}"),
    };
    format!("{name}-r{cutoff}.graphs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = crate::paths::folder_of(path);
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().map_or("cache".into(), |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// What a cache file must have been built from.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    crate_version: String,
    cutoff: f64,
    self_edges: bool,
    data_digest: [u8; 32],
    options_digest: [u8; 32],
}

impl Header {
    fn new(source: &Source, load_options: &LoadOptions, graph_options: &GraphOptions) -> Result<Self> {
        let c = &load_options.cleaning;
        let options = format!(
            "key={:?};min_diagonal={:?};max_eps_poly={:?};drop_duplicates={};duplicate_tolerance={:?};symprec={:?}",
            load_options.dielectric_key,
            c.min_diagonal,
            c.max_eps_poly,
            c.drop_duplicates,
            c.duplicate_tolerance,
            load_options.symprec
        );
        Ok(Self {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            cutoff: graph_options.cutoff,
            self_edges: graph_options.self_edges,
            data_digest: source.digest()?,
            options_digest: Sha256::digest(options.as_bytes()).into(),
        })
    }
}

fn encode(header: &Header, set: &GraphSet) -> Vec<u8> {
    let mut payload = Writer::default();
    payload.string(&set.source);
    let r = &set.report;
    for count in [r.frames_read, r.kept, r.diagonal_below_min, r.eps_poly_above_max, r.duplicates] {
        payload.u64(count as u64);
    }
    payload.u64(set.graphs.len() as u64);
    for g in &set.graphs {
        payload.u64(g.frame as u64);
        match &g.id {
            Some(id) => {
                payload.u8(1);
                payload.string(id);
            }
            None => payload.u8(0),
        }
        payload.u64(g.numbers.len() as u64);
        payload.0.extend_from_slice(&g.numbers);
        payload.u64(g.num_edges() as u64);
        g.edge_src.iter().chain(&g.edge_dst).for_each(|&i| payload.u32(i));
        g.edge_vec
            .iter()
            .flatten()
            .chain(g.target_cartesian.iter().flatten())
            .chain(&g.target_irreps)
            .for_each(|&x| payload.f64(x));
        payload.u8(CrystalSystem::ALL.iter().position(|&s| s == g.crystal_system).expect("one of ALL") as u8);
    }
    let mut out = Writer::default();
    out.0.extend_from_slice(MAGIC);
    out.u32(FORMAT_VERSION);
    out.0.extend_from_slice(&(header.crate_version.len() as u16).to_le_bytes());
    out.0.extend_from_slice(header.crate_version.as_bytes());
    out.f64(header.cutoff);
    out.u8(u8::from(header.self_edges));
    out.0.extend_from_slice(&header.data_digest);
    out.0.extend_from_slice(&header.options_digest);
    out.u64(payload.0.len() as u64);
    out.0.extend_from_slice(&Sha256::digest(&payload.0));
    out.0.extend_from_slice(&payload.0);
    out.0
}

/// `Ok(None)` when the file is a valid cache for another request (stale),
/// `Err` when it is not a valid cache file at all.
fn decode(bytes: &[u8], want: &Header) -> Result<Option<GraphSet>, String> {
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err("not a graph cache file".into());
    }
    if r.u32()? != FORMAT_VERSION {
        return Ok(None);
    }
    let version_len = u16::from_le_bytes(r.array()?) as usize;
    let found = Header {
        crate_version: String::from_utf8(r.take(version_len)?.to_vec()).map_err(|_| "bad version string")?,
        cutoff: r.f64()?,
        self_edges: r.u8()? != 0,
        data_digest: r.array()?,
        options_digest: r.array()?,
    };
    if found != *want {
        return Ok(None);
    }
    let len = r.u64()? as usize;
    let digest: [u8; 32] = r.array()?;
    let payload = r.take(len)?;
    if !r.0.is_empty() || Sha256::digest(payload).as_slice() != digest {
        return Err("payload does not match its checksum".into());
    }
    let mut r = Reader(payload);
    let source = r.string()?;
    let mut count = || r.u64().map(|x| x as usize);
    let report = CleaningReport {
        frames_read: count()?,
        kept: count()?,
        diagonal_below_min: count()?,
        eps_poly_above_max: count()?,
        duplicates: count()?,
    };
    let n = r.u64()? as usize;
    let mut graphs = Vec::with_capacity(n.min(payload.len()));
    for _ in 0..n {
        let frame = r.u64()? as usize;
        let id = if r.u8()? == 1 { Some(r.string()?) } else { None };
        let nodes = r.u64()? as usize;
        let numbers = r.take(nodes)?.to_vec();
        let edges = r.u64()? as usize;
        let mut indices = |k: usize| (0..k).map(|_| r.u32()).collect::<Result<Vec<_>, _>>();
        let edge_src = indices(edges)?;
        let edge_dst = indices(edges)?;
        if edge_src.iter().chain(&edge_dst).any(|&i| i as usize >= nodes) {
            return Err("edge index out of range".into());
        }
        let edge_vec =
            (0..edges).map(|_| Ok([r.f64()?, r.f64()?, r.f64()?])).collect::<Result<Vec<_>, String>>()?;
        let mut target_cartesian = [[0.0; 3]; 3];
        for x in target_cartesian.iter_mut().flatten() {
            *x = r.f64()?;
        }
        let mut target_irreps = [0.0; 6];
        for x in target_irreps.iter_mut() {
            *x = r.f64()?;
        }
        let crystal_system = *CrystalSystem::ALL.get(r.u8()? as usize).ok_or("bad crystal system")?;
        graphs.push(Graph {
            frame,
            id,
            numbers,
            edge_src,
            edge_dst,
            edge_vec,
            target_cartesian,
            target_irreps,
            crystal_system,
        });
    }
    Ok(Some(GraphSet { source, report, graphs }))
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f64(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err("file is truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u64()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "bad string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_stale_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("set.extxyz");
        let mut bytes = Vec::new();
        crate::crystal::io::write_extxyz(&mut bytes, &crate::data::synthetic::generate(12, 5)).unwrap();
        std::fs::write(&data, &bytes).unwrap();
        let source = Source::File(data.clone());
        let cache = CacheOptions { dir: Some(dir.path().join("cache")) };
        let (load_opts, graph_opts) = (LoadOptions::default(), GraphOptions::default());

        let (built, status) = load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap();
        let CacheStatus::Built(path, _) = status else { panic!("expected a build, got {status:?}") };
        let (hit, status) = load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap();
        assert_eq!(status, CacheStatus::Hit(path.clone()));
        assert_eq!(hit, built);

        // Another cutoff gets its own file; other file contents invalidate the cache.
        let smaller = GraphOptions { cutoff: 4.0, ..graph_opts };
        let (other, status) = load_graphs(&source, &load_opts, &smaller, &cache).unwrap();
        assert!(matches!(status, CacheStatus::Built(..)));
        assert!(
            other.graphs.iter().map(Graph::num_edges).sum::<usize>()
                < built.graphs.iter().map(Graph::num_edges).sum()
        );
        // Each cutoff keeps its own file: the first one is still a hit.
        let (_, status) = load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap();
        assert_eq!(status, CacheStatus::Hit(path.clone()));
        crate::crystal::io::write_extxyz(&mut bytes, &crate::data::synthetic::generate(3, 9)).unwrap();
        std::fs::write(&data, &bytes).unwrap();
        let (changed, status) = load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap();
        assert!(matches!(status, CacheStatus::Built(..)));
        assert_eq!(changed.report.frames_read, 15);

        // A damaged file is rebuilt, not trusted.
        let mut damaged = std::fs::read(&path).unwrap();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let (rebuilt, status) = load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap();
        assert!(matches!(status, CacheStatus::Built(_, ref why) if why.starts_with("corrupt")), "{status:?}");
        assert_eq!(rebuilt, changed);
        std::fs::write(&path, b"ANISO").unwrap();
        assert!(matches!(
            load_graphs(&source, &load_opts, &graph_opts, &cache).unwrap().1,
            CacheStatus::Built(..)
        ));

        // A cache folder that cannot be created costs a warning, not the graphs.
        let blocked = CacheOptions { dir: Some(data.join("cache")) };
        let (graphs, status) = load_graphs(&source, &load_opts, &graph_opts, &blocked).unwrap();
        assert!(matches!(status, CacheStatus::Unwritable(..)), "{status:?}");
        assert_eq!(graphs, changed);
    }
}
