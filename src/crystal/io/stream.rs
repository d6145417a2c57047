//! Structure files read one frame at a time, for files too large to hold:
//! screening tens of thousands of crystals needs memory for the frames in
//! flight, not for the file.
//!
//! Both formats go through the same per-frame parsers as the whole-file
//! readers ([`super::read_structures`]), so a frame reads the same either
//! way and every problem names the same file, frame and line.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::Result;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{frame_location, ExtxyzOptions, Frame};
use crate::error::InputError;

/// Calls `each` with every frame of an extended-XYZ (`.extxyz`, `.xyz`) or
/// pymatgen JSON (`.json`) file, in file order, with the bytes of the file
/// read so far (for progress). Returns the number of frames. Stops at the
/// first bad frame (an [`InputError`]) or the first error of `each`.
pub fn stream_structures(
    path: &Path,
    options: &ExtxyzOptions,
    mut each: impl FnMut(Frame, u64) -> Result<()>,
) -> Result<usize> {
    let file = path.display().to_string();
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let open = || {
        File::open(path).map_err(|err| {
            InputError::new(&file, format!("cannot read the file: {err}"))
                .with_hint("check the path and that the file is readable")
        })
    };
    match extension.as_str() {
        "extxyz" | "xyz" => stream_extxyz(BufReader::with_capacity(1 << 16, open()?), &file, options, &mut each),
        "json" => stream_json(BufReader::with_capacity(1 << 16, open()?), &file, options, &mut each),
        _ => Err(InputError::new(&file, format!("unknown structure file type '.{extension}'"))
            .with_hint("use extended XYZ (.extxyz or .xyz, as ASE writes it) or a JSON list of pymatgen structures (.json)")
            .into()),
    }
}

fn stream_extxyz(
    mut reader: impl BufRead,
    file: &str,
    options: &ExtxyzOptions,
    each: &mut dyn FnMut(Frame, u64) -> Result<()>,
) -> Result<usize> {
    let (mut lines_read, mut bytes, mut frames) = (0usize, 0u64, 0usize);
    let mut next_line = |lines_read: &mut usize, bytes: &mut u64| -> Result<Option<String>, InputError> {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|err| {
            InputError::new(format!("{file}:{}", *lines_read + 1), format!("cannot read the line: {err}"))
                .with_hint("the file must be UTF-8 text")
        })?;
        if n == 0 {
            return Ok(None);
        }
        *lines_read += 1;
        *bytes += n as u64;
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        Ok(Some(line))
    };
    loop {
        let first = loop {
            match next_line(&mut lines_read, &mut bytes)? {
                None => break None,
                Some(line) if line.trim().is_empty() => continue,
                Some(line) => break Some(line),
            }
        };
        let Some(first) = first else { break };
        let offset = lines_read - 1;
        let mut lines = vec![first];
        if let Ok(count) = lines[0].trim().parse::<usize>() {
            for _ in 0..=count {
                match next_line(&mut lines_read, &mut bytes)? {
                    Some(line) => lines.push(line),
                    None => break,
                }
            }
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (frame, _) = super::extxyz::parse_frame(&refs, offset, frames + 1, file, options)?;
        frames += 1;
        each(frame, bytes)?;
    }
    if frames == 0 {
        return Err(InputError::new(file, "the file contains no frames")
            .with_hint("an extended-XYZ frame is an atom-count line, a comment line with Lattice=\"…\", and one line per atom")
            .into());
    }
    Ok(frames)
}

/// Where the JSON parser is in the file: bytes and lines read, and the line
/// of the first byte of the record being read.
#[derive(Default)]
struct Position {
    bytes: Cell<u64>,
    newlines: Cell<usize>,
    /// Set by [`Position::mark`]; the first byte after it that is neither
    /// white space nor a separator starts the next record.
    waiting: Cell<bool>,
    record_line: Cell<usize>,
}

impl Position {
    fn mark(&self) {
        self.waiting.set(true);
    }
}

/// A reader that keeps [`Position`] up to date (serde_json reads it a byte at a time).
struct Counting<R> {
    inner: R,
    at: Rc<Position>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let at = &self.at;
        for &b in &buf[..n] {
            if at.waiting.get() && !b.is_ascii_whitespace() && b != b',' {
                at.waiting.set(false);
                at.record_line.set(at.newlines.get() + 1);
            }
            if b == b'\n' {
                at.newlines.set(at.newlines.get() + 1);
            }
        }
        at.bytes.set(at.bytes.get() + n as u64);
        Ok(n)
    }
}

/// Walks the top-level list (or single record) and hands each record on.
struct Records<'a> {
    file: &'a str,
    options: &'a ExtxyzOptions,
    at: Rc<Position>,
    each: &'a mut dyn FnMut(Frame, u64) -> Result<()>,
    count: usize,
    /// The error that stopped the walk (serde's error type cannot carry it).
    stopped: Option<anyhow::Error>,
}

impl Records<'_> {
    fn record(&mut self, value: Value) -> Result<()> {
        self.count += 1;
        let line = self.at.record_line.get().max(1);
        let frame = super::pymatgen::parse_record(&value, self.file, self.count, line, self.options)?;
        (self.each)(frame, self.at.bytes.get())
    }

    fn stop<E: serde::de::Error>(&mut self, err: anyhow::Error) -> E {
        self.stopped = Some(err);
        E::custom("stopped")
    }
}

impl<'de> Visitor<'de> for &mut Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.at.mark();
            let Some(value) = seq.next_element::<Value>()? else { return Ok(()) };
            if let Err(err) = self.record(value) {
                return Err(self.stop(err));
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.at.record_line.set(1);
        let value = serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.record(value).map_err(|err| self.stop(err))
    }
}

impl<'de> DeserializeSeed<'de> for &mut Records<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn stream_json(
    reader: impl Read,
    file: &str,
    options: &ExtxyzOptions,
    each: &mut dyn FnMut(Frame, u64) -> Result<()>,
) -> Result<usize> {
    let at = Rc::new(Position::default());
    let mut deserializer = serde_json::Deserializer::from_reader(Counting { inner: reader, at: at.clone() });
    let mut records = Records { file, options, at: at.clone(), each, count: 0, stopped: None };
    let walked = (&mut records).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    if let Some(err) = records.stopped.take() {
        return Err(err);
    }
    if let Err(err) = walked {
        let location = match records.count {
            0 if err.is_eof() && at.bytes.get() == 0 => {
                return Err(InputError::new(file, "the file is empty")
                    .with_hint("give a JSON list of records {\"structure\": <pymatgen Structure.as_dict()>, \"dielectric\": 3×3}")
                    .into())
            }
            n => frame_location(file, n + 1, err.line()),
        };
        let problem = if err.is_data() {
            "the JSON document is not a list of records".to_owned()
        } else {
            format!("invalid JSON: {err}")
        };
        return Err(InputError::new(location, problem)
            .with_hint("give a JSON list of records {\"structure\": …, \"dielectric\": …}; JSON has no NaN or Infinity, numbers must be finite")
            .into());
    }
    if records.count == 0 {
        return Err(InputError::new(file, "the file contains no structures")
            .with_hint("add at least one record to the list")
            .into());
    }
    Ok(records.count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crystal::io::{parse_extxyz, parse_pymatgen_json};

    fn collect_extxyz(text: &str) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        stream_extxyz(text.as_bytes(), "x.extxyz", &ExtxyzOptions::default(), &mut |f, _| {
            frames.push(f);
            Ok(())
        })?;
        Ok(frames)
    }

    fn collect_json(text: &str) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        stream_json(text.as_bytes(), "x.json", &ExtxyzOptions::default(), &mut |f, _| {
            frames.push(f);
            Ok(())
        })?;
        Ok(frames)
    }

    const XYZ: &str = "2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 id=a dielectric=\"2 0 0 0 2 0 0 0 3\"\nNa 0 0 0\nCl 2 2 2\n\n1\nLattice=\"3 0 0 0 3 0 0 0 3\" Properties=species:S:1:pos:R:3\nSi 0 0 0\n";

    #[test]
    fn extxyz_frames_stream_as_the_whole_file_reads_them() {
        let whole = parse_extxyz(XYZ, "x.extxyz", &ExtxyzOptions::default()).unwrap();
        assert_eq!(collect_extxyz(XYZ).unwrap(), whole);
        assert_eq!(whole[1].dielectric, None, "a frame without a tensor reads for screening");
        let truncated = &XYZ[..XYZ.len() - 9];
        let err = collect_extxyz(truncated).unwrap_err().to_string();
        assert!(err.contains("frame 2 (line 6)") && err.contains("ends after 0 of the 1"), "{err}");
    }

    #[test]
    fn json_records_stream_with_their_lines() {
        let text = "[\n {\"structure\": {\"lattice\": {\"matrix\": [[3,0,0],[0,3,0],[0,0,3]]}, \"sites\": [{\"species\": [{\"element\": \"Si\", \"occu\": 1}], \"xyz\": [0,0,0]}]}, \"material_id\": \"mp-1\"},\n\n {\"structure\": {\"lattice\": {\"matrix\": [[3,0,0],[0,3,0],[0,0,3]]}, \"sites\": [{\"species\": [{\"element\": \"Ge\", \"occu\": 1}], \"xyz\": [0,0,0]}]}}\n]\n";
        let whole = parse_pymatgen_json(text, "x.json", &ExtxyzOptions::default()).unwrap();
        let streamed = collect_json(text).unwrap();
        assert_eq!(streamed, whole);
        assert_eq!(streamed.iter().map(|f| f.line).collect::<Vec<_>>(), vec![2, 4]);
        let bad = text.replace("\"Ge\"", "\"Xx\"");
        let err = collect_json(&bad).unwrap_err().to_string();
        assert!(err.contains("frame 2 (line 4)"), "{err}");
        let err = collect_json("[{\"structure\": 1},").unwrap_err().to_string();
        assert!(err.contains("frame 1"), "{err}");
        assert!(collect_json("").unwrap_err().to_string().contains("empty"));
    }
}
