//! Extended XYZ, as ASE writes it.
//!
//! Each frame is an atom-count line, a comment line of `key=value` pairs
//! (`Lattice="ax ay az bx by bz cx cy cz"`, `Properties=species:S:1:pos:R:3…`,
//! `pbc="T T T"`, the dielectric tensor under a chosen key, anything else), then
//! one line per atom with the columns that `Properties` declares.

use std::io::Write;
use std::path::Path;

use super::{
    frame_location, number_problem, parse_finite, read_text, structure_error, ExtxyzOptions, Frame, ID_KEYS,
};
use crate::crystal::elements;
use crate::crystal::structure::Structure;
use crate::error::InputError;

const DEFAULT_PROPERTIES: &str = "species:S:1:pos:R:3";

/// Reads every frame of an extended-XYZ file.
pub fn read_extxyz(path: impl AsRef<Path>, options: &ExtxyzOptions) -> Result<Vec<Frame>, InputError> {
    let path = path.as_ref();
    parse_extxyz(&read_text(path)?, &path.display().to_string(), options)
}

/// Parses extended-XYZ text; `file` names the source in error messages.
pub fn parse_extxyz(text: &str, file: &str, options: &ExtxyzOptions) -> Result<Vec<Frame>, InputError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        while at < lines.len() && lines[at].trim().is_empty() {
            at += 1;
        }
        if at == lines.len() {
            break;
        }
        let (frame, consumed) = parse_frame(&lines[at..], at, frames.len() + 1, file, options)?;
        frames.push(frame);
        at += consumed;
    }
    if frames.is_empty() {
        return Err(InputError::new(file, "the file contains no frames")
            .with_hint("an extended-XYZ frame is an atom-count line, a comment line with Lattice=\"…\", and one line per atom"));
    }
    Ok(frames)
}

/// Column layout declared by `Properties=`.
#[derive(Debug)]
struct Columns {
    total: usize,
    /// Column of the element: a symbol (`species:S:1`) or an atomic number (`Z:I:1`).
    species: usize,
    species_is_symbol: bool,
    /// First of the three Cartesian position columns.
    pos: usize,
}

/// Parses one frame from `lines` (which start at its count line, 0-based file
/// line `offset`); returns the frame and the number of lines it used.
// One function on purpose: the count line, the comment's keys and the atom rows are read in one pass, each error naming its file line.
pub(super) fn parse_frame(
    lines: &[&str],
    offset: usize,
    number: usize,
    file: &str,
    options: &ExtxyzOptions,
) -> Result<(Frame, usize), InputError> {
    let start = offset + 1;
    let here = |line: usize| frame_location(file, number, line);
    let count_text = lines[0].trim();
    let count: usize = count_text.parse().map_err(|_| {
        let hint = if number > 1 {
            format!("each frame starts with its atom count; if frame {} has more atom lines than its count says, fix its count", number - 1)
        } else {
            "the first line of a frame is the number of atoms".to_string()
        };
        InputError::new(here(start), format!("expected the number of atoms, found '{}'", shorten(count_text))).with_hint(hint)
    })?;
    if count == 0 {
        return Err(InputError::new(here(start), "the frame declares 0 atoms")
            .with_hint("a crystal needs at least one atom"));
    }
    let Some(comment) = lines.get(1) else {
        return Err(InputError::new(here(start), "the file ends before the frame's comment line").with_hint(
            "the file looks truncated; add the comment line with Lattice=\"…\" and the atom lines",
        ));
    };
    let comment_line = start + 1;
    let pairs = parse_key_values(comment).map_err(|problem| {
        InputError::new(here(comment_line), problem)
            .with_hint("write key=value pairs; quote values that contain spaces")
    })?;
    let lookup = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str());

    let lattice_text = lookup("Lattice").ok_or_else(|| {
        InputError::new(here(comment_line), "the comment line has no Lattice=\"…\"")
            .with_hint("add Lattice=\"ax ay az bx by bz cx cy cz\" (the three lattice vectors in Å); molecules without a cell are not supported")
    })?;
    let lattice_numbers = parse_numbers(lattice_text, "Lattice").map_err(|p| {
        InputError::new(here(comment_line), p)
            .with_hint("Lattice holds 9 finite numbers: the three lattice vectors as rows, Å")
    })?;
    let lattice = to_3x3(&lattice_numbers).ok_or_else(|| {
        InputError::new(
            here(comment_line),
            format!("Lattice has {} numbers, expected 9", lattice_numbers.len()),
        )
        .with_hint("Lattice holds 9 numbers: the three lattice vectors as rows, Å")
    })?;
    if let Some(pbc) = lookup("pbc") {
        let flags: Vec<&str> = pbc.split_whitespace().collect();
        if flags.len() != 3 || !flags.iter().all(|f| matches!(*f, "T" | "True" | "true" | "1")) {
            return Err(InputError::new(
                here(comment_line),
                format!("pbc=\"{pbc}\" is not periodic in all three directions"),
            )
            .with_hint("only bulk crystals are supported: use pbc=\"T T T\""));
        }
    }
    let properties = lookup("Properties").unwrap_or(DEFAULT_PROPERTIES);
    let columns = parse_properties(properties).map_err(|p| {
        InputError::new(here(comment_line), p)
            .with_hint("Properties is name:type:count triples with species:S:1 and pos:R:3, e.g. Properties=species:S:1:pos:R:3")
    })?;

    let key = options.dielectric_key.as_str();
    let dielectric_text = pairs
        .iter()
        .find(|(k, _)| k == key)
        .or_else(|| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)));
    let dielectric = match dielectric_text {
        Some((_, text)) => {
            let values = parse_numbers(text, &format!("'{key}'")).map_err(|p| {
                InputError::new(here(comment_line), p).with_hint(format!("{key} holds the 3×3 tensor as 9 finite numbers, row-major"))
            })?;
            Some(to_3x3(&values).ok_or_else(|| {
                InputError::new(
                    here(comment_line),
                    format!("'{key}' has {} numbers, but a 3×3 tensor needs 9", values.len()),
                )
                .with_hint(format!("write {key}=\"e11 e12 e13 e21 e22 e23 e31 e32 e33\" (row-major)"))
            })?)
        }
        None if options.require_dielectric => {
            return Err(InputError::new(here(comment_line), format!("the frame has no dielectric tensor under the key '{key}'"))
                .with_hint(format!(
                    "add {key}=\"e11 e12 … e33\" (9 numbers, row-major) to the comment line, or name the key that holds it"
                )))
        }
        None => None,
    };
    let id = ID_KEYS.iter().find_map(|k| lookup(k)).map(str::to_string);

    let mut structure =
        Structure { lattice, numbers: Vec::with_capacity(count), positions: Vec::with_capacity(count) };
    for a in 0..count {
        let line_number = start + 2 + a;
        let Some(line) = lines.get(2 + a) else {
            return Err(InputError::new(
                here(start),
                format!("the file ends after {a} of the {count} atom lines this frame declares"),
            )
            .with_hint(
                "the file looks truncated, or the atom count on the frame's first line is too large",
            ));
        };
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() != columns.total {
            let hint = if tokens.len() < columns.total && a > 0 && line.trim().parse::<usize>().is_ok() {
                format!("this looks like the next frame's atom count: the frame declares {count} atoms but has only {a}")
            } else {
                format!("every atom line needs the {} columns of Properties={properties}", columns.total)
            };
            return Err(InputError::new(
                here(line_number),
                format!("atom {} has {} columns, expected {}", a + 1, tokens.len(), columns.total),
            )
            .with_hint(hint));
        }
        let token = tokens[columns.species];
        let z = if columns.species_is_symbol {
            elements::atomic_number(token).ok_or_else(|| {
                InputError::new(here(line_number), format!("unknown element symbol '{}'", shorten(token)))
                    .with_hint("use a chemical symbol such as Si, O or Fe (case-sensitive)")
            })?
        } else {
            token.parse::<u8>().ok().filter(|&z| elements::is_valid(z)).ok_or_else(|| {
                InputError::new(here(line_number), format!("'{}' is not an atomic number", shorten(token)))
                    .with_hint("the Z column holds integers from 1 to 118")
            })?
        };
        let mut position = [0.0; 3];
        for (k, value) in position.iter_mut().enumerate() {
            let token = tokens[columns.pos + k];
            *value = parse_finite(token).ok_or_else(|| {
                InputError::new(here(line_number), number_problem(token, "position"))
                    .with_hint("positions are finite Cartesian coordinates in Å")
            })?;
        }
        structure.numbers.push(z);
        structure.positions.push(position);
    }
    structure.validate().map_err(|problem| {
        structure_error(file, number, start, problem, |i| format!("atom {} on line {}", i + 1, start + 2 + i))
    })?;
    Ok((Frame { structure, dielectric, id, line: start }, 2 + count))
}

/// Splits a comment line into `key=value` pairs; quoted values may hold spaces
/// (`\"` escapes a quote), `{…}`/`[…]` values may too, a bare key means `T`.
fn parse_key_values(line: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i == chars.len() {
            return Ok(pairs);
        }
        let key = read_token(&chars, &mut i, true)?;
        let mut j = i;
        skip_space(&mut j);
        if j < chars.len() && chars[j] == '=' {
            i = j + 1;
            skip_space(&mut i);
            let value = if i < chars.len() { read_token(&chars, &mut i, false)? } else { String::new() };
            pairs.push((key, value));
        } else {
            pairs.push((key, "T".to_string()));
        }
    }
}

/// Reads a quoted string, a bracketed group or a bare word starting at `chars[*i]`.
fn read_token(chars: &[char], i: &mut usize, is_key: bool) -> Result<String, String> {
    let mut out = String::new();
    match chars[*i] {
        '"' | '\'' => {
            let quote = chars[*i];
            *i += 1;
            while *i < chars.len() && chars[*i] != quote {
                if chars[*i] == '\\' && *i + 1 < chars.len() {
                    *i += 1;
                }
                out.push(chars[*i]);
                *i += 1;
            }
            if *i == chars.len() {
                return Err(format!("unterminated quote in the comment line after '{}'", shorten(&out)));
            }
            *i += 1;
        }
        open @ ('{' | '[') if !is_key => {
            let close = if open == '{' { '}' } else { ']' };
            let mut depth = 0;
            while *i < chars.len() {
                let c = chars[*i];
                depth += (c == open) as i32 - (c == close) as i32;
                out.push(c);
                *i += 1;
                if depth == 0 {
                    break;
                }
            }
            if depth != 0 {
                return Err(format!("unbalanced '{open}' in the comment line"));
            }
        }
        _ => {
            while *i < chars.len() && !chars[*i].is_whitespace() && !(is_key && chars[*i] == '=') {
                out.push(chars[*i]);
                *i += 1;
            }
        }
    }
    Ok(out)
}

/// Parses `name:type:count:…` and finds the element and position columns.
fn parse_properties(spec: &str) -> Result<Columns, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if !parts.len().is_multiple_of(3) {
        return Err(format!("Properties={spec} is not a list of name:type:count triples"));
    }
    let mut total = 0;
    let (mut species, mut z, mut pos) = (None, None, None);
    for triple in parts.chunks(3) {
        let (name, kind) = (triple[0], triple[1]);
        let count: usize = triple[2].parse().ok().filter(|&c| c > 0).ok_or_else(|| {
            format!("Properties={spec}: column count '{}' of '{name}' is not a positive integer", triple[2])
        })?;
        if !matches!(kind, "S" | "R" | "I" | "L") {
            return Err(format!("Properties={spec}: type '{kind}' of '{name}' is not one of S, R, I, L"));
        }
        match (name.to_ascii_lowercase().as_str(), kind, count) {
            ("species", "S", 1) => species = Some(total),
            ("z", "I", 1) => z = Some(total),
            ("pos", "R", 3) => pos = Some(total),
            ("species" | "pos", _, _) => {
                return Err(format!(
                    "Properties={spec}: '{name}:{kind}:{count}' should be species:S:1 or pos:R:3"
                ))
            }
            _ => {}
        }
        total += count;
    }
    let pos = pos.ok_or_else(|| format!("Properties={spec} has no pos:R:3 column"))?;
    let (species, species_is_symbol) = match (species, z) {
        (Some(s), _) => (s, true),
        (None, Some(z)) => (z, false),
        (None, None) => return Err(format!("Properties={spec} has no species:S:1 column")),
    };
    Ok(Columns { total, species, species_is_symbol, pos })
}

/// Numbers separated by spaces or commas, brackets ignored; all must be
/// finite. ASE writes 2-D arrays as `_JSON [[…], …]`: the prefix is dropped.
fn parse_numbers(text: &str, what: &str) -> Result<Vec<f64>, String> {
    let text = text.trim_start().strip_prefix("_JSON").unwrap_or(text);
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}' | '(' | ')'))
        .filter(|t| !t.is_empty())
        .map(|t| parse_finite(t).ok_or_else(|| number_problem(t, &format!("{what} entry"))))
        .collect()
}

fn to_3x3(values: &[f64]) -> Option<[[f64; 3]; 3]> {
    (values.len() == 9).then(|| std::array::from_fn(|i| std::array::from_fn(|j| values[3 * i + j])))
}

/// The first 40 characters of user text, for messages.
fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Writes frames as ASE-style extended XYZ. Numbers use the shortest
/// representation that parses back to the same `f64`, so reading the output
/// gives bit-identical structures and tensors.
pub fn write_extxyz<W: Write>(mut out: W, frames: &[Frame]) -> std::io::Result<()> {
    for frame in frames {
        write_extxyz_frame(&mut out, frame, &[])?;
    }
    out.flush()
}

/// Writes one frame as [`write_extxyz`] does, with `extra` `key=value`
/// pairs on its comment line (values quoted when they need it).
pub fn write_extxyz_frame<W: Write>(
    out: &mut W,
    frame: &Frame,
    extra: &[(String, String)],
) -> std::io::Result<()> {
    let s = &frame.structure;
    writeln!(out, "{}", s.len())?;
    let lattice: Vec<String> = s.lattice.iter().flatten().map(|x| format!("{x:?}")).collect();
    write!(out, "Lattice=\"{}\" Properties={DEFAULT_PROPERTIES}", lattice.join(" "))?;
    if let Some(id) = &frame.id {
        write!(out, " id={}", quote_if_needed(id))?;
    }
    if let Some(tensor) = &frame.dielectric {
        let values: Vec<String> = tensor.iter().flatten().map(|x| format!("{x:?}")).collect();
        write!(out, " dielectric=\"{}\"", values.join(" "))?;
    }
    for (key, value) in extra {
        write!(out, " {key}={}", quote_if_needed(value))?;
    }
    writeln!(out, " pbc=\"T T T\"")?;
    for (&z, p) in s.numbers.iter().zip(&s.positions) {
        writeln!(out, "{:<2} {:?} {:?} {:?}", elements::symbol(z), p[0], p[1], p[2])?;
    }
    Ok(())
}

/// Writes frames to an extended-XYZ file (see [`write_extxyz`]).
pub fn write_extxyz_file(path: impl AsRef<Path>, frames: &[Frame]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    write_extxyz(std::io::BufWriter::new(file), frames)
}

fn quote_if_needed(value: &str) -> String {
    if !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
    {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_with_quotes_brackets_and_flags() {
        let pairs = parse_key_values(
            r#"Lattice="1 0 0 0 1 0 0 0 1" a=3 name="x \"y\"" flag arr=[1, 2] pbc = "T T T""#,
        )
        .unwrap();
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("Lattice"), "1 0 0 0 1 0 0 0 1");
        assert_eq!(get("a"), "3");
        assert_eq!(get("name"), "x \"y\"");
        assert_eq!(get("flag"), "T");
        assert_eq!(get("arr"), "[1, 2]");
        assert_eq!(get("pbc"), "T T T");
        assert!(parse_key_values("a=\"open").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn properties_find_columns_among_others() {
        let c = parse_properties("species:S:1:pos:R:3:forces:R:3:tags:I:1").unwrap();
        assert_eq!((c.total, c.species, c.pos, c.species_is_symbol), (8, 0, 1, true));
        let c = parse_properties("id:I:1:Z:I:1:masses:R:1:pos:R:3").unwrap();
        assert_eq!((c.total, c.species, c.pos, c.species_is_symbol), (6, 1, 3, false));
        assert!(parse_properties("species:S:1").unwrap_err().contains("pos:R:3"));
        assert!(parse_properties("species:S:1:pos:R").is_err());
        assert!(parse_properties("species:S:1:pos:X:3").is_err());
    }
}
