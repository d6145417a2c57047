//! Errors that reach the user.
//!
//! Bad input (a malformed file, an impossible option) is an [`InputError`]: it
//! names where the problem is, what it is and how to fix it, and makes the
//! binary exit with code 2. Every other failure is a runtime fault (exit 1).

pub use anisostudy_error::{ConfigProblem, InputError};

/// Exit code for an error chain: 2 when any cause is an [`InputError`], else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.downcast_ref::<InputError>().is_some()) {
        2
    } else {
        1
    }
}
