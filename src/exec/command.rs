//! The `command` objective: any executable, with `{name}` placeholders for
//! the trial's parameters.
//!
//! The template is split into words without a shell, by the usual rules:
//! whitespace separates words; `'…'` keeps everything literally; `"…"`
//! keeps spaces and understands `\"` and `\\`; a backslash outside quotes
//! escapes the next character. A placeholder is `{` + identifier + `}`
//! (letters, digits, `_`); other braces are literal text, so JSON such as
//! `{"objective": 1}` needs no escaping (`{{` and `}}` also write one brace).
//! Besides the parameters, `{trial}`, `{trial_dir}`, `{device}`,
//! `{threads}` and `{seed}` are known.

use std::collections::BTreeMap;

/// One piece of a word.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Placeholder(String),
}

/// A command line with placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandTemplate {
    words: Vec<Vec<Piece>>,
}

impl CommandTemplate {
    /// Splits `template` into words and finds its placeholders.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        for word in split_words(template)? {
            words.push(pieces(&word));
        }
        if words.is_empty() {
            return Err("the command is empty".to_owned());
        }
        Ok(Self { words })
    }

    /// Placeholder names, each once, in order of appearance.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for piece in self.words.iter().flatten() {
            if let Piece::Placeholder(name) = piece {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The program and its arguments with every placeholder filled in;
    /// errors name the placeholders that `values` lacks.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<(String, Vec<String>), String> {
        let missing: Vec<&str> =
            self.placeholders().into_iter().filter(|p| !values.contains_key(*p)).collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|m| format!("{{{m}}}")).collect();
            return Err(format!("no value for placeholder(s) {}", names.join(", ")));
        }
        let mut words = self.words.iter().map(|word| {
            word.iter()
                .map(|piece| match piece {
                    Piece::Text(text) => text.as_str(),
                    Piece::Placeholder(name) => values[name].as_str(),
                })
                .collect::<String>()
        });
        let program = words.next().expect("a template has at least one word");
        Ok((program, words.collect()))
    }
}

/// Shell-like word splitting without expansion.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a `'` quote is not closed".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a `\"` quote is not closed".to_owned()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a `\"` quote is not closed".to_owned()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("the command ends with a lone `\\`".to_owned()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Splits a word into text and `{identifier}` placeholders.
fn pieces(word: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = word;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            text.push(c);
            rest = &rest[2..];
            continue;
        }
        if c == '{' {
            if let Some(end) = rest.find('}') {
                let name = &rest[1..end];
                let identifier = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if identifier {
                    if !text.is_empty() {
                        out.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    out.push(Piece::Placeholder(name.to_owned()));
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn splits_like_a_shell_and_fills_placeholders() {
        let t = CommandTemplate::parse(r#"python "my train.py" --lr={lr} --out {trial_dir}/x 'a {b}' \{c}"#)
            .unwrap();
        assert_eq!(t.placeholders(), ["lr", "trial_dir", "b", "c"]);
        let (program, args) =
            t.render(&values(&[("lr", "0.1"), ("trial_dir", "/t"), ("b", "B"), ("c", "C")])).unwrap();
        assert_eq!(program, "python");
        assert_eq!(args, ["my train.py", "--lr=0.1", "--out", "/t/x", "a B", "C"]);
    }

    #[test]
    fn json_braces_are_text() {
        let t = CommandTemplate::parse(r#"sh -c 'echo {"objective": {x}}'"#).unwrap();
        assert_eq!(t.placeholders(), ["x"]);
        let (_, args) = t.render(&values(&[("x", "2.5")])).unwrap();
        assert_eq!(args, ["-c", r#"echo {"objective": 2.5}"#]);
        let escaped = CommandTemplate::parse("echo {{lr}}").unwrap();
        assert!(escaped.placeholders().is_empty());
        assert_eq!(escaped.render(&BTreeMap::new()).unwrap().1, ["{lr}"]);
    }

    #[test]
    fn reports_problems() {
        assert!(CommandTemplate::parse("echo 'open").unwrap_err().contains("not closed"));
        assert!(CommandTemplate::parse("   ").unwrap_err().contains("empty"));
        let t = CommandTemplate::parse("run {lr} {mom}").unwrap();
        assert_eq!(t.render(&values(&[("lr", "1")])).unwrap_err(), "no value for placeholder(s) {mom}");
    }
}
