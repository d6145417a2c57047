//! Reading a study file: text → YAML value → `--set` overrides → typed
//! [`StudyFile`], with every error located at the file's line and column
//! (or at the `--set` flag that introduced the bad value) and a hint.
//!
//! serde_yaml reports the key path of a deserialisation error (e.g.
//! `phases[0].space.lr`). Without overrides we deserialise the original text,
//! so its line and column are exact; with overrides the edited value is
//! deserialised from re-serialised text and [`Locator`] maps the path back
//! to the original line, or to the flag when the path was overridden.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::file::StudyFile;
use crate::error::InputError;

/// A parsed study file with what is needed to locate later (semantic) errors.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub file: StudyFile,
    /// Folder that relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    pub locator: Locator,
}

/// Reads and parses `path`, applying `overrides` (`key.path=value`).
pub fn load_file(path: &Path, overrides: &[String]) -> Result<LoadedFile, InputError> {
    let label = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|err| {
        InputError::new(&label, format!("cannot read the study file: {err}"))
            .with_hint("check the path (studies/*.yaml hold examples)")
    })?;
    let base_dir = crate::paths::folder_of(path).to_path_buf();
    let (file, locator) = parse_str(&source, &label, overrides)?;
    Ok(LoadedFile { file, base_dir, locator })
}

/// Parses study-file text; `label` names it in errors.
pub fn parse_str(
    source: &str,
    label: &str,
    overrides: &[String],
) -> Result<(StudyFile, Locator), InputError> {
    let mut locator = Locator { label: label.to_owned(), source: source.to_owned(), overridden: Vec::new() };
    check_tabs(source, label)?;
    let mut value: Value = serde_yaml::from_str(source).map_err(|err| locator.yaml_error(&err, false))?;
    if value.is_null() {
        return Err(InputError::new(label, "the study file is empty")
            .with_hint("start from studies/smoke.yaml; a study needs at least `name` and `phases`"));
    }
    if !value.is_mapping() {
        return Err(InputError::new(format!("{label}:1:1"), "the study file must be a mapping of keys")
            .with_hint("write `name: ...`, `phases: ...` etc. at the top level"));
    }
    for flag in overrides {
        let path = apply_override(&mut value, flag)?;
        locator.overridden.push((path, flag.clone()));
    }
    let file = if overrides.is_empty() {
        serde_yaml::from_str(source).map_err(|err| locator.yaml_error(&err, false))?
    } else {
        let text = serde_yaml::to_string(&value).expect("a YAML value always serialises");
        serde_yaml::from_str(&text).map_err(|err| locator.yaml_error(&err, true))?
    };
    Ok((file, locator))
}

/// YAML forbids tabs in indentation; serde_yaml's message for them is cryptic.
fn check_tabs(source: &str, label: &str) -> Result<(), InputError> {
    for (i, line) in source.lines().enumerate() {
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        if let Some(col) = indent.find('\t') {
            return Err(InputError::new(
                format!("{label}:{}:{}", i + 1, col + 1),
                "a tab character in the indentation",
            )
            .with_hint("YAML indents with spaces only: replace the tab with spaces"));
        }
    }
    Ok(())
}

/// Applies one `--set key.path=value` to the YAML tree; returns the path.
fn apply_override(root: &mut Value, flag: &str) -> Result<String, InputError> {
    let location = format!("--set {flag}");
    let Some((path, text)) = flag.split_once('=') else {
        return Err(InputError::new(location, "expected `key.path=value`")
            .with_hint("for example --set training.epochs=1"));
    };
    let segments = parse_path(path).map_err(|problem| {
        InputError::new(&location, problem).with_hint("write keys separated by dots, e.g. phases[0].n_trials")
    })?;
    let new: Value = serde_yaml::from_str(text).map_err(|err| {
        InputError::new(&location, format!("the value `{text}` is not valid YAML: {err}"))
            .with_hint("quote strings that contain YAML syntax, e.g. --set 'objective.command=\"a: b\"'")
    })?;
    let mut node = root;
    let mut walked = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        node = match (segment, node) {
            (Segment::Key(key), Value::Mapping(map)) => {
                let key = Value::String(key.clone());
                if !map.contains_key(&key) {
                    map.insert(key.clone(), if last { Value::Null } else { Value::Mapping(Mapping::new()) });
                }
                map.get_mut(&key).expect("just inserted")
            }
            (Segment::Key(key), node @ Value::Null) => {
                *node = Value::Mapping(Mapping::new());
                let Value::Mapping(map) = node else { unreachable!() };
                map.entry(Value::String(key.clone())).or_insert(Value::Null)
            }
            (Segment::Index(index), Value::Sequence(seq)) => {
                let len = seq.len();
                seq.get_mut(*index).ok_or_else(|| {
                    InputError::new(
                        &location,
                        format!("`{walked}` has {len} entries, there is no entry [{index}]"),
                    )
                    .with_hint(format!("use an index below {len}"))
                })?
            }
            (Segment::Index(index), _) => {
                return Err(InputError::new(
                    &location,
                    format!("`{walked}` is not a list, so it has no entry [{index}]"),
                )
                .with_hint("use a key name here"));
            }
            (Segment::Key(key), other) => {
                let what = kind_of(other);
                let at = if walked.is_empty() { "the file".to_owned() } else { format!("`{walked}`") };
                return Err(InputError::new(&location, format!("{at} is {what}, so it has no key `{key}`"))
                    .with_hint("override a key that exists in the schema (docs/study-file.md)"));
            }
        };
        walked.push_str(&segment.to_string_after(&walked));
    }
    *node = new;
    Ok(walked)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// One step of a key path: `name` or `[3]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    fn to_string_after(&self, prefix: &str) -> String {
        match self {
            Segment::Key(key) if prefix.is_empty() => key.clone(),
            Segment::Key(key) => format!(".{key}"),
            Segment::Index(i) => format!("[{i}]"),
        }
    }
}

/// Parses `a.b[0].c` (also `a.b.0.c`) into segments.
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && (rest.is_empty() || segments.is_empty()) {
            return Err(format!("the key path `{path}` has an empty key"));
        }
        if !name.is_empty() {
            match name.parse::<usize>() {
                Ok(i) => segments.push(Segment::Index(i)),
                Err(_) => segments.push(Segment::Key(name.to_owned())),
            }
        }
        while !rest.is_empty() {
            let end = rest.find(']').ok_or_else(|| format!("unclosed `[` in the key path `{path}`"))?;
            let index = rest[1..end]
                .parse::<usize>()
                .map_err(|_| format!("`{}` is not a list index in `{path}`", &rest[1..end]))?;
            segments.push(Segment::Index(index));
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("unexpected `{rest}` in the key path `{path}`"));
            }
        }
    }
    Ok(segments)
}

/// Finds where a key path is in the source, for error messages.
#[derive(Debug, Clone)]
pub struct Locator {
    label: String,
    source: String,
    /// Overridden key paths and the flags that set them.
    overridden: Vec<(String, String)>,
}

impl Locator {
    /// The file's name in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `file:line:column` of the key path (or of its closest existing
    /// ancestor), or `--set …` when a flag set it.
    pub fn at(&self, path: &str) -> String {
        if let Some(flag) = self.flag_for(path) {
            return format!("--set {flag}");
        }
        let place = match parse_path(path).ok().and_then(|segments| line_of(&self.source, &segments)) {
            Some((line, column)) => format!("{}:{line}:{column}", self.label),
            None => self.label.clone(),
        };
        // A flag that changed something inside this key may be the culprit.
        let inside = self.overridden.iter().rev().find(|(set, _)| {
            path.is_empty()
                || set.strip_prefix(path).is_some_and(|r| r.starts_with('.') || r.starts_with('['))
        });
        match inside {
            Some((_, flag)) => format!("{place} (with --set {flag})"),
            None => place,
        }
    }

    /// An error at `path` whose problem names the key.
    pub fn error(&self, path: &str, problem: impl AsRef<str>) -> InputError {
        let problem = problem.as_ref();
        let problem = if path.is_empty() { problem.to_owned() } else { format!("`{path}`: {problem}") };
        InputError::new(self.at(path), problem)
    }

    fn flag_for(&self, path: &str) -> Option<&str> {
        self.overridden
            .iter()
            .rev()
            .find(|(set, _)| {
                path == set
                    || path
                        .strip_prefix(set.as_str())
                        .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
            })
            .map(|(_, flag)| flag.as_str())
    }

    /// Turns a serde_yaml error into an [`InputError`] with a hint.
    /// `regenerated`: the error's line refers to re-serialised text.
    fn yaml_error(&self, err: &serde_yaml::Error, regenerated: bool) -> InputError {
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) if err.location().is_some() => &full[..i],
            _ => full.as_str(),
        };
        let (path, message) = split_path(message);
        let (problem, hint) = explain(message);
        // For an unknown key, point at the key itself when we can find it.
        let key_path = unknown_name(message, "unknown field").map(|key| {
            let direct = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
            // A tagged section (a sampler, a pruner) reports its parent's path.
            if self.line_known(&direct) || self.flag_for(&direct).is_some() {
                direct
            } else {
                self.descendant(path, key).unwrap_or(direct)
            }
        });
        let (path, problem, hint) = match key_path.as_deref().and_then(misplaced_option) {
            Some((problem, hint)) => (key_path.as_deref().unwrap_or(path), problem, hint),
            None => (path, problem, hint),
        };
        let location = if key_path.as_deref().is_some_and(|k| self.line_known(k)) {
            self.at(key_path.as_deref().unwrap_or_default())
        } else if regenerated || err.location().is_none() {
            match (&key_path, path) {
                (Some(key_path), _) if self.flag_for(key_path).is_some() || self.line_known(key_path) => {
                    self.at(key_path)
                }
                (_, "") => self.overridden.last().map_or(self.label.clone(), |(_, f)| format!("--set {f}")),
                _ => self.at(path),
            }
        } else {
            let loc = err.location().expect("checked above");
            format!("{}:{}:{}", self.label, loc.line(), loc.column())
        };
        let problem = if path.is_empty() { problem } else { format!("`{path}`: {problem}") };
        InputError::new(location, problem).with_hint(hint)
    }

    /// The path of the first key named `key` below `path` in the file.
    fn descendant(&self, path: &str, key: &str) -> Option<String> {
        fn search(value: &serde_yaml::Value, key: &str, at: String, depth: usize) -> Option<String> {
            let map = value.as_mapping()?;
            if map.contains_key(key) {
                return Some(if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") });
            }
            if depth == 0 {
                return None;
            }
            map.iter().find_map(|(k, v)| {
                let k = k.as_str()?;
                search(v, key, if at.is_empty() { k.to_owned() } else { format!("{at}.{k}") }, depth - 1)
            })
        }
        let root: serde_yaml::Value = serde_yaml::from_str(&self.source).ok()?;
        let mut value = &root;
        for segment in parse_path(path).ok().unwrap_or_default() {
            value = match segment {
                Segment::Key(k) => value.get(k.as_str())?,
                Segment::Index(i) => value.get(i)?,
            };
        }
        let found = search(value, key, path.to_owned(), 2)?;
        self.line_known(&found).then_some(found)
    }

    fn line_known(&self, path: &str) -> bool {
        parse_path(path).ok().and_then(|s| line_of_exact(&self.source, &s)).is_some()
    }
}

/// Splits serde_yaml's `path: message` (the path has no spaces).
fn split_path(message: &str) -> (&str, &str) {
    match message.split_once(": ") {
        Some((path, rest))
            if !path.is_empty()
                && path.chars().all(|c| c.is_alphanumeric() || "_.[]-".contains(c))
                && !path.starts_with('.') =>
        {
            (path, rest)
        }
        _ => ("", message),
    }
}

/// For an option written under a sampler or pruner of another `type`: the
/// problem and hint naming the type it belongs to (asked of the types themselves).
fn misplaced_option(key_path: &str) -> Option<(String, String)> {
    use super::file::{option_owners, PrunerSpec, SamplerSpec};
    let (parent, key) = key_path.rsplit_once('.')?;
    let (noun, owners) = if parent.ends_with("sampler") {
        ("sampler", option_owners::<SamplerSpec>(SamplerSpec::KINDS, key))
    } else if parent.ends_with("pruner") {
        ("pruner", option_owners::<PrunerSpec>(PrunerSpec::KINDS, key))
    } else {
        return None;
    };
    let (first, rest) = owners.split_first()?;
    let (owner, types) = match rest {
        [] => (format!("the {first} {noun}"), format!("`type: {first}`")),
        _ => {
            let names = owners.join(" and ");
            let types = owners.iter().map(|o| format!("`type: {o}`")).collect::<Vec<_>>().join(" or ");
            (format!("the {names} {noun}s"), types)
        }
    };
    Some((format!("`{key}` is an option of {owner}"), format!("remove it, or set {types}")))
}

/// The name in "unknown field `x`, …" (or variant).
fn unknown_name<'a>(message: &'a str, what: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(what)?.strip_prefix(" `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// The names in serde's "expected one of `a`, `b`" / "expected `a` or `b`" / "expected `a`".
fn expected_names(message: &str) -> Vec<&str> {
    let Some(i) = message.find("expected ") else { return Vec::new() };
    message[i..].split('`').skip(1).step_by(2).collect()
}

/// A clearer problem statement and a hint for serde's messages.
fn explain(message: &str) -> (String, String) {
    for (what, noun) in [("unknown field", "key"), ("unknown variant", "value")] {
        if let Some(name) = unknown_name(message, what) {
            let allowed = expected_names(message);
            let list = allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
            let hint = match closest(name, &allowed) {
                Some(best) => format!("did you mean `{best}`? allowed: {list}"),
                None if allowed.is_empty() => format!("this {noun} is not allowed here"),
                None => format!("allowed: {list}"),
            };
            return (format!("unknown {noun} `{name}`"), hint);
        }
    }
    if let Some(name) = unknown_name(message, "missing field") {
        return (format!("missing key `{name}`"), format!("add `{name}:` (see docs/study-file.md)"));
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let hint = match message.rsplit_once("expected ") {
            Some((_, expected)) => format!("write {}", plain_expected(expected)),
            None => String::new(),
        };
        return (message.to_owned(), hint);
    }
    if message.contains("did not find expected") || message.contains("mapping values are not allowed") {
        return (
            format!("YAML syntax error: {message}"),
            "check the indentation (spaces only, children indented more than their key) \
             and that every `key: value` has a space after the colon; a value that itself \
             contains `: ` (e.g. JSON in a command) must be quoted or written as a block (`>-`)"
                .to_owned(),
        );
    }
    if message.starts_with("duplicate entry") {
        return (message.to_owned(), "remove one of the two entries".to_owned());
    }
    (message.to_owned(), String::new())
}

/// serde's type names in words a user knows.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u32" | "u64" | "usize" => "a whole number ≥ 0".to_owned(),
        "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        other => other.to_owned(),
    }
}

/// The allowed name closest to `name` by edit distance, if close enough.
pub fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), *a))
        .filter(|&(d, a)| d <= (a.chars().count().max(name.chars().count()) / 3).max(1) || a.contains(name))
        .min_by_key(|&(d, _)| d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A source line split into what the path lookup needs.
struct Line<'a> {
    /// 1-based line number.
    number: usize,
    /// Column (0-based) where `text` starts.
    indent: usize,
    text: &'a str,
}

/// Block-style YAML lines, with each `- ` item marker split into its own
/// line so that `- name: x` becomes an item at the dash's column and a key
/// at the column after it.
fn logical_lines(source: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    for (i, raw) in source.lines().enumerate() {
        let mut indent = raw.len() - raw.trim_start().len();
        let mut text = raw.trim_start();
        if text.is_empty() || text.starts_with('#') || text.starts_with("---") {
            continue;
        }
        while text == "-" || text.starts_with("- ") {
            lines.push(Line { number: i + 1, indent, text: "-" });
            let rest = text[1..].trim_start();
            indent += text.len() - rest.len();
            text = rest;
        }
        if !text.is_empty() {
            lines.push(Line { number: i + 1, indent, text });
        }
    }
    lines
}

/// Line and column (1-based) of the deepest existing part of `path`.
fn line_of(source: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let lines = logical_lines(source);
    let mut found = None;
    let mut block: &[Line] = &lines;
    for segment in path {
        match find_in_block(block, segment) {
            Some((at, child)) => {
                found = Some((block[at].number, block[at].indent + 1));
                block = child;
            }
            None => break,
        }
    }
    found
}

/// Like [`line_of`], but only when the whole path is found.
fn line_of_exact(source: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let lines = logical_lines(source);
    let mut block: &[Line] = &lines;
    let mut found = None;
    for segment in path {
        let (at, child) = find_in_block(block, segment)?;
        found = Some((block[at].number, block[at].indent + 1));
        block = child;
    }
    found
}

/// Finds `segment` among the entries of `block` (whose first line sets the
/// entries' indentation); returns its line index and its children.
fn find_in_block<'b, 'a>(block: &'b [Line<'a>], segment: &Segment) -> Option<(usize, &'b [Line<'a>])> {
    let indent = block.first()?.indent;
    let mut item = 0;
    let mut i = 0;
    while i < block.len() {
        let line = &block[i];
        if line.indent < indent {
            break;
        }
        let end = i + 1 + block[i + 1..].iter().take_while(|l| l.indent > line.indent).count();
        if line.indent == indent {
            let hit = match segment {
                Segment::Key(key) => key_of(line.text) == Some(key.as_str()),
                Segment::Index(index) => {
                    let is_item = line.text == "-";
                    let hit = is_item && item == *index;
                    item += usize::from(is_item);
                    hit
                }
            };
            if hit {
                return Some((i, &block[i + 1..end]));
            }
        }
        i = end;
    }
    None
}

/// The key of a `key: value` line (quotes removed).
fn key_of(text: &str) -> Option<&str> {
    let colon = text.find(':')?;
    let rest = &text[colon + 1..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some(text[..colon].trim().trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "name: x\nphases:\n  - name: tpe\n    sampler:\n      type: tpe\n    space:\n      lr: {type: float}\n  - name: grid\n    n_trials: 3\n";

    #[test]
    fn finds_lines_of_nested_keys_and_items() {
        let at = |p: &str| line_of(SOURCE, &parse_path(p).unwrap());
        assert_eq!(at("name"), Some((1, 1)));
        assert_eq!(at("phases[0].sampler.type"), Some((5, 7)));
        assert_eq!(at("phases[0].space.lr.low"), Some((7, 7)));
        assert_eq!(at("phases[1].n_trials"), Some((9, 5)));
        assert_eq!(at("phases.1.name"), Some((8, 5)));
    }

    #[test]
    fn overrides_edit_nested_keys_and_create_missing_ones() {
        let mut value: Value = serde_yaml::from_str(SOURCE).unwrap();
        apply_override(&mut value, "phases[1].n_trials=7").unwrap();
        apply_override(&mut value, "training.epochs=1").unwrap();
        assert_eq!(value["phases"][1]["n_trials"], Value::from(7));
        assert_eq!(value["training"]["epochs"], Value::from(1));
        assert!(apply_override(&mut value, "name.x=1").unwrap_err().problem.contains("is a string"));
        assert!(apply_override(&mut value, "phases[5].name=a").unwrap_err().problem.contains("2 entries"));
    }

    #[test]
    fn closest_names() {
        assert_eq!(edit_distance("weight_decya", "weight_decay"), 2);
        assert_eq!(closest("wieght_decay", &["lr", "weight_decay"]), Some("weight_decay"));
        assert_eq!(closest("zzz", &["lr", "weight_decay"]), None);
    }
}
