//! Errors that reach the user.
//!
//! Bad input (a malformed file, an impossible option) is an [`InputError`]: it
//! names where the problem is, what it is and how to fix it, and makes the
//! binary exit with code 2. Every other failure is a runtime fault (exit 1).

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

/// Exit code for an error chain: 2 when any cause is an [`InputError`], else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.downcast_ref::<InputError>().is_some()) {
        2
    } else {
        1
    }
}
