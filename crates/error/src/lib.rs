//! Errors about what a user gave: the bottom layer every other crate of the
//! workspace may use.
//!
//! Bad input (a malformed file, an impossible option) is an [`InputError`]:
//! it names where the problem is, what it is and how to fix it, and makes
//! the binary exit with code 2. A [`ConfigProblem`] is a setting a component
//! refuses, named by its key, for the caller to place in the user's file.

use std::fmt;

/// A problem with something the user gave us (file, YAML, flag).
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// Where: `file`, `file:line`, `file, frame 3 (line 17)`, `--flag`.
    pub location: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it; empty when the problem says it all.
    pub hint: String,
}

impl InputError {
    pub fn new(location: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { location: location.into(), problem: problem.into(), hint: String::new() }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// A setting a component refuses, named by its key: `field`, and `with`
/// when the problem is the combination of two settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub field: &'static str,
    pub problem: String,
    pub with: Option<&'static str>,
}

impl ConfigProblem {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into(), with: None }
    }

    /// The problem of `field`'s value together with `other`'s.
    pub fn combined(field: &'static str, other: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into(), with: Some(other) }
    }

    /// Whether the problem concerns `name`.
    pub fn involves(&self, name: &str) -> bool {
        self.field == name || self.with == Some(name)
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigProblem {}
