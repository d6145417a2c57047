//! The allocation a controller runs in: its nodes and each node's share of
//! CPUs and GPUs, as `scontrol show job -d` reports them.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::slurm_command;

/// One node of an allocation and its share of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeShare {
    pub name: String,
    pub cpus: u32,
    pub gpus: u32,
    /// Megabytes of the job's memory on the node; 0 where Slurm does not
    /// allocate memory (not a consumable resource there).
    pub mem_mb: u64,
}

/// The allocation a controller runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub job_id: String,
    pub nodes: Vec<NodeShare>,
}

/// `scontrol show hostnames LIST`: `n[1-2],m3` as node names.
pub fn expand_nodelist(list: &str) -> Result<Vec<String>> {
    Ok(slurm_command("scontrol", &["show", "hostnames", list])?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The number of CPUs in a `CPU_IDs=0-3,8` list.
fn count_ids(list: &str) -> u32 {
    list.split(',')
        .filter_map(|range| match range.split_once('-') {
            Some((a, b)) => Some(b.parse::<u32>().ok()? + 1 - a.parse::<u32>().ok()?),
            None => range.parse::<u32>().ok().map(|_| 1),
        })
        .sum()
}

/// GPUs in a `GRES=gpu:2(IDX:0-1)` or `GRES=gpu:a100:2(IDX:0,1),shard:8(…)`
/// field, or in `sinfo`'s `gpu:2,shard:8`.
pub(super) fn count_gpus(gres: &str) -> u32 {
    count_gres(gres, "gpu")
}

/// The count of GRES `name` (`gpu`, `shard`) in such a field: the sum of
/// its entries' counts, whatever their types.
pub(super) fn count_gres(gres: &str, name: &str) -> u32 {
    // Entries are separated by commas outside parentheses.
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in gres.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                entries.push(&gres[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&gres[start..]);
    entries
        .iter()
        .filter(|entry| entry.split([':', '(']).next() == Some(name))
        .filter_map(|entry| entry.split('(').next()?.rsplit(':').next()?.parse::<u32>().ok())
        .sum()
}

/// A `key=value` field of a `scontrol show` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

impl Allocation {
    /// The allocation this process runs in, or `None` outside one.
    pub fn current() -> Result<Option<Allocation>> {
        match std::env::var("SLURM_JOB_ID") {
            Ok(id) if !id.trim().is_empty() => Allocation::read(id.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// Job `job_id`'s nodes and their CPUs and GPUs, from `scontrol show job -d`.
    pub fn read(job_id: &str) -> Result<Allocation> {
        let text = slurm_command("scontrol", &["show", "job", "-d", job_id])
            .with_context(|| format!("cannot read the allocation of Slurm job {job_id}"))?;
        Allocation::parse(job_id, &text, expand_nodelist)
    }

    /// Reads `scontrol show job -d` output; `expand` turns a node list into names.
    pub fn parse(
        job_id: &str,
        text: &str,
        expand: impl Fn(&str) -> Result<Vec<String>>,
    ) -> Result<Allocation> {
        let mut nodes: BTreeMap<String, NodeShare> = BTreeMap::new();
        let mut order = Vec::new();
        for line in text.lines().map(str::trim) {
            // The per-node detail lines: `Nodes=n[1-2] CPU_IDs=2-3 Mem=0 GRES=gpu:2(IDX:0-1)`.
            let (Some(list), Some(cpus)) = (field(line, "Nodes"), field(line, "CPU_IDs")) else { continue };
            let gpus = field(line, "GRES").map_or(0, count_gpus);
            let mem_mb = field(line, "Mem").and_then(|m| m.parse().ok()).unwrap_or(0);
            for name in expand(list)? {
                if !nodes.contains_key(&name) {
                    order.push(name.clone());
                }
                nodes.insert(name.clone(), NodeShare { name, cpus: count_ids(cpus), gpus, mem_mb });
            }
        }
        if nodes.is_empty() {
            bail!("`scontrol show job -d {job_id}` lists no nodes: is the job running?");
        }
        let nodes = order.into_iter().map(|name| nodes.remove(&name).expect("listed")).collect();
        Ok(Allocation { job_id: job_id.to_owned(), nodes })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gpus_and_shards_of_a_gres_field() {
        assert_eq!(count_gpus("gpu:2(IDX:0-1)"), 2);
        assert_eq!(count_gpus("gpu:a100:2(IDX:0,1),gpu:v100:1(IDX:2)"), 3);
        // sinfo's form, with shards beside the GPUs: the shards are not GPUs.
        assert_eq!(count_gpus("gpu:2,shard:8"), 2);
        assert_eq!(count_gres("gpu:2,shard:8", "shard"), 8);
        assert_eq!(count_gres("gpu:4(S:0-1),shard:32(S:0-1)", "shard"), 32);
        assert_eq!(count_gpus("(null)"), 0);
        assert_eq!(count_gres("gpu:2", "shard"), 0);
    }

    #[test]
    fn reads_an_allocation() {
        let text = "JobId=31 JobName=x\n   NodeList=n[1-2] BatchHost=n1\n     Nodes=n1 CPU_IDs=0-1 Mem=0 GRES=gpu:2(IDX:0-1)\n     Nodes=n2 CPU_IDs=2-3,6 Mem=0 GRES=gpu:a100:1(IDX:1)\n";
        let alloc = Allocation::parse("31", text, |list| Ok(vec![list.to_owned()])).unwrap();
        assert_eq!(
            alloc.nodes,
            [
                NodeShare { name: "n1".into(), cpus: 2, gpus: 2, mem_mb: 0 },
                NodeShare { name: "n2".into(), cpus: 3, gpus: 1, mem_mb: 0 }
            ]
        );
        let cpu_only = "   Nodes=c[1-2] CPU_IDs=0-7 Mem=1000 GRES=\n";
        let alloc = Allocation::parse("5", cpu_only, |_| Ok(vec!["c1".into(), "c2".into()])).unwrap();
        assert_eq!(alloc.nodes.len(), 2);
        assert_eq!(alloc.nodes[1], NodeShare { name: "c2".into(), cpus: 8, gpus: 0, mem_mb: 1000 });
        assert!(Allocation::parse("5", "JobId=5 JobState=PENDING\n", |_| Ok(vec![])).is_err());
    }
}
