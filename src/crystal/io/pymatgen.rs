//! JSON lists of pymatgen structures with their dielectric tensors.
//!
//! The file is a list of records
//! `{"structure": <Structure.as_dict()>, "dielectric": [[…], […], […]], "material_id": "mp-149"}`;
//! a record may also be a bare `Structure.as_dict()`. Sites are
//! `{"species": [{"element": "Si", "occu": 1}], "xyz": [x, y, z]}` (Cartesian, Å)
//! or carry fractional `abc` instead. Partially occupied sites are rejected.

use std::path::Path;

use serde_json::Value;

use super::{frame_location, read_text, structure_error, ExtxyzOptions, Frame, ID_KEYS};
use crate::crystal::elements;
use crate::crystal::structure::Structure;
use crate::error::InputError;

/// Reads every record of a pymatgen JSON file.
pub fn read_pymatgen_json(path: impl AsRef<Path>, options: &ExtxyzOptions) -> Result<Vec<Frame>, InputError> {
    let path = path.as_ref();
    parse_pymatgen_json(&read_text(path)?, &path.display().to_string(), options)
}

/// Parses pymatgen JSON text; `file` names the source in error messages.
pub fn parse_pymatgen_json(
    text: &str,
    file: &str,
    options: &ExtxyzOptions,
) -> Result<Vec<Frame>, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::new(file, "the file is empty")
            .with_hint("give a JSON list of records {\"structure\": <pymatgen Structure.as_dict()>, \"dielectric\": 3×3}"));
    }
    let document: Value = serde_json::from_str(text).map_err(|err| {
        // Name the record the syntax error is in, when the scan finds one.
        let frame = element_lines(text).iter().filter(|&&start| start <= err.line()).count();
        let location = match frame {
            0 => format!("{file}:{}", err.line()),
            _ => frame_location(file, frame, err.line()),
        };
        InputError::new(location, format!("invalid JSON: {err}"))
            .with_hint("fix the JSON syntax; note that JSON has no NaN or Infinity, numbers must be finite")
    })?;
    let records = match document {
        Value::Array(records) => records,
        Value::Object(_) => vec![document],
        _ => {
            return Err(InputError::new(file, "the JSON document is not a list of records")
                .with_hint("give a JSON list of records {\"structure\": …, \"dielectric\": …}"))
        }
    };
    if records.is_empty() {
        return Err(InputError::new(file, "the file contains no structures")
            .with_hint("add at least one record to the list"));
    }
    let lines = element_lines(text);
    records
        .iter()
        .enumerate()
        .map(|(k, record)| {
            let line = lines.get(k).copied().unwrap_or(1);
            parse_record(record, file, k + 1, line, options)
        })
        .collect()
}

pub(super) fn parse_record(
    record: &Value,
    file: &str,
    number: usize,
    line: usize,
    options: &ExtxyzOptions,
) -> Result<Frame, InputError> {
    let error = |problem: String, hint: &str| {
        InputError::new(frame_location(file, number, line), problem).with_hint(hint.to_string())
    };
    let Value::Object(fields) = record else {
        return Err(error(
            "the record is not a JSON object".into(),
            "each record is {\"structure\": …, \"dielectric\": …}",
        ));
    };
    let structure_value = match fields.get("structure") {
        Some(s) => s,
        None if fields.contains_key("lattice") && fields.contains_key("sites") => record,
        None => {
            return Err(error(
                "the record has no \"structure\"".into(),
                "put the pymatgen Structure.as_dict() under the key \"structure\"",
            ))
        }
    };
    let structure = parse_structure(structure_value).map_err(|(problem, hint)| error(problem, &hint))?;

    let key = options.dielectric_key.as_str();
    let dielectric = match fields.get(key) {
        Some(Value::Null) | None if options.require_dielectric => {
            return Err(error(
                format!("the record has no dielectric tensor under the key \"{key}\""),
                &format!("add \"{key}\": [[e11, e12, e13], [e21, e22, e23], [e31, e32, e33]], or name the key that holds it"),
            ))
        }
        Some(Value::Null) | None => None,
        Some(value) => Some(parse_tensor(value).map_err(|problem| {
            error(
                format!("\"{key}\" {problem}"),
                &format!("write \"{key}\" as a 3×3 list of finite numbers, [[e11, e12, e13], [e21, e22, e23], [e31, e32, e33]]"),
            )
        })?),
    };
    let id = ID_KEYS.iter().find_map(|k| match fields.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    structure
        .validate()
        .map_err(|problem| structure_error(file, number, line, problem, |i| format!("site {}", i + 1)))?;
    Ok(Frame { structure, dielectric, id, line })
}

type Problem = (String, String);

fn parse_structure(value: &Value) -> Result<Structure, Problem> {
    const SHAPE: &str =
        "use pymatgen's Structure.as_dict(): {\"lattice\": {\"matrix\": 3×3}, \"sites\": [...]}";
    let fields = value
        .as_object()
        .ok_or_else(|| ("\"structure\" is not a JSON object".to_string(), SHAPE.to_string()))?;
    let matrix = fields.get("lattice").and_then(|l| l.get("matrix")).ok_or_else(|| {
        ("the structure has no \"lattice\": {\"matrix\": …}".to_string(), SHAPE.to_string())
    })?;
    let lattice = parse_tensor(matrix).map_err(|p| {
        (
            format!("the lattice matrix {p}"),
            "the lattice matrix is 3×3 finite numbers, rows = lattice vectors in Å".to_string(),
        )
    })?;
    let sites = fields
        .get("sites")
        .and_then(Value::as_array)
        .ok_or_else(|| ("the structure has no \"sites\" list".to_string(), SHAPE.to_string()))?;
    let mut structure = Structure {
        lattice,
        numbers: Vec::with_capacity(sites.len()),
        positions: Vec::with_capacity(sites.len()),
    };
    for (i, site) in sites.iter().enumerate() {
        let (z, position) =
            parse_site(site, &structure).map_err(|(p, h)| (format!("site {}: {p}", i + 1), h))?;
        structure.numbers.push(z);
        structure.positions.push(position);
    }
    Ok(structure)
}

fn parse_site(site: &Value, structure: &Structure) -> Result<(u8, [f64; 3]), Problem> {
    let site_hint = "a site is {\"species\": [{\"element\": \"Si\", \"occu\": 1}], \"xyz\": [x, y, z]} (or fractional \"abc\")";
    let species = site
        .get("species")
        .and_then(Value::as_array)
        .ok_or_else(|| ("no \"species\" list".to_string(), site_hint.to_string()))?;
    let ordered_hint = "only ordered structures are supported: give each site one element with occupancy 1 (order the structure first, e.g. with pymatgen's OrderDisorderedStructureTransformation)";
    let [specie] = species.as_slice() else {
        return Err((
            format!("{} species on one site (partial occupancy)", species.len()),
            ordered_hint.to_string(),
        ));
    };
    let occupancy = specie.get("occu").and_then(Value::as_f64).unwrap_or(1.0);
    if (occupancy - 1.0).abs() > 1e-6 {
        return Err((format!("partial occupancy {occupancy}"), ordered_hint.to_string()));
    }
    let symbol = specie
        .get("element")
        .and_then(Value::as_str)
        .ok_or_else(|| ("the species has no \"element\" symbol".to_string(), site_hint.to_string()))?;
    let z = elements::atomic_number(symbol).ok_or_else(|| {
        (
            format!("unknown element symbol '{symbol}'"),
            "use a chemical symbol such as Si, O or Fe (case-sensitive)".to_string(),
        )
    })?;
    let position = if let Some(xyz) = site.get("xyz") {
        parse_vector(xyz)
            .map_err(|p| (format!("\"xyz\" {p}"), "xyz is 3 finite Cartesian coordinates, Å".to_string()))?
    } else if let Some(abc) = site.get("abc") {
        let frac = parse_vector(abc)
            .map_err(|p| (format!("\"abc\" {p}"), "abc is 3 finite fractional coordinates".to_string()))?;
        structure.to_cartesian(frac)
    } else {
        return Err(("no \"xyz\" or \"abc\" coordinates".to_string(), site_hint.to_string()));
    };
    Ok((z, position))
}

/// A 3×3 matrix given as nested lists, or as 9 numbers row-major.
fn parse_tensor(value: &Value) -> Result<[[f64; 3]; 3], String> {
    let numbers = flatten_numbers(value)?;
    if numbers.len() != 9 {
        return Err(format!("has {} numbers, but a 3×3 matrix needs 9", numbers.len()));
    }
    if let Some(rows) = value.as_array().filter(|rows| rows.iter().any(Value::is_array)) {
        if rows.len() != 3 || rows.iter().any(|r| r.as_array().map(Vec::len) != Some(3)) {
            return Err("is not 3 rows of 3 numbers".to_string());
        }
    }
    Ok(std::array::from_fn(|i| std::array::from_fn(|j| numbers[3 * i + j])))
}

fn parse_vector(value: &Value) -> Result<[f64; 3], String> {
    let numbers = flatten_numbers(value)?;
    <[f64; 3]>::try_from(numbers.as_slice()).map_err(|_| format!("has {} numbers, expected 3", numbers.len()))
}

fn flatten_numbers(value: &Value) -> Result<Vec<f64>, String> {
    fn walk(value: &Value, out: &mut Vec<f64>) -> Result<(), String> {
        match value {
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, out)),
            Value::Number(n) => match n.as_f64().filter(|x| x.is_finite()) {
                Some(x) => {
                    out.push(x);
                    Ok(())
                }
                None => Err(format!("holds {n}, which is not a finite number")),
            },
            other => Err(format!("holds {}, which is not a number", short_json(other))),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out)?;
    Ok(out)
}

fn short_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// 1-based line on which each element of the top-level JSON array starts.
fn element_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped, mut expecting) = (false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        if depth == 1 && expecting && !matches!(c, ']' | '}' | ',') {
            lines.push(line);
            expecting = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                expecting = depth == 1 && c == '[';
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' => expecting = depth == 1,
            _ => {}
        }
    }
    if lines.is_empty() {
        // A single top-level object: it starts at its first non-blank line.
        lines.push(text.lines().position(|l| !l.trim().is_empty()).map_or(1, |i| i + 1));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_lines_follow_top_level_records() {
        let text = "[\n  {\"a\": [1, {\"b\": \"x,{\"}]},\n\n  {\"c\": 2}\n]\n";
        assert_eq!(element_lines(text), vec![2, 4]);
        assert_eq!(element_lines("[{\"a\":1},{\"b\":2}]"), vec![1, 1]);
    }

    #[test]
    fn tensors_nested_or_flat() {
        let nested: Value = serde_json::from_str("[[1,2,3],[4,5,6],[7,8,9]]").unwrap();
        assert_eq!(parse_tensor(&nested).unwrap()[1], [4.0, 5.0, 6.0]);
        let flat: Value = serde_json::from_str("[1,2,3,4,5,6,7,8,9]").unwrap();
        assert_eq!(parse_tensor(&flat).unwrap()[2], [7.0, 8.0, 9.0]);
        let bad: Value = serde_json::from_str("[[1,2],[3,4]]").unwrap();
        assert!(parse_tensor(&bad).unwrap_err().contains("4 numbers"));
        let ragged: Value = serde_json::from_str("[[1,2,3,4],[5,6],[7,8,9]]").unwrap();
        assert!(parse_tensor(&ragged).unwrap_err().contains("3 rows"));
    }
}
