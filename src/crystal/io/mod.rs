//! Readers and writers for structure files with dielectric tensors.
//!
//! Two formats, chosen by extension in [`read_structures`]:
//! - extended XYZ as ASE writes it (`.extxyz`, `.xyz`), see [`extxyz`];
//! - a JSON list of pymatgen `Structure.as_dict()` records (`.json`), see [`pymatgen`].
//!
//! Every problem with the input is an [`InputError`] that names the file, the
//! frame (1-based) and line, what is wrong and how to fix it.

pub mod extxyz;
pub mod pymatgen;
pub mod stream;

use std::path::Path;

use super::structure::{Structure, StructureProblem};
use crate::error::InputError;

pub use extxyz::{parse_extxyz, read_extxyz, write_extxyz, write_extxyz_file, write_extxyz_frame};
pub use pymatgen::{parse_pymatgen_json, read_pymatgen_json};
pub use stream::stream_structures;

/// One structure read from a file, with its dielectric tensor when present.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub structure: Structure,
    /// ε∞, 3×3, row-major as given in the file.
    pub dielectric: Option<[[f64; 3]; 3]>,
    /// Identifier from an `mp_id`, `material_id` or `id` entry, if any.
    pub id: Option<String>,
    /// 1-based line where the frame starts in its file.
    pub line: usize,
}

/// What the readers look for.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtxyzOptions {
    /// Per-frame key of the 3×3 dielectric tensor (9 numbers, row-major).
    pub dielectric_key: String,
    /// Whether a frame without the tensor is an error (training data) or allowed (prediction).
    pub require_dielectric: bool,
}

impl Default for ExtxyzOptions {
    fn default() -> Self {
        Self { dielectric_key: "dielectric".to_string(), require_dielectric: false }
    }
}

/// Keys that may hold a frame's identifier, in order of preference.
pub const ID_KEYS: [&str; 4] = ["mp_id", "material_id", "mpid", "id"];

/// Reads every frame of an extended-XYZ (`.extxyz`, `.xyz`) or pymatgen JSON
/// (`.json`) file.
pub fn read_structures(path: impl AsRef<Path>, options: &ExtxyzOptions) -> Result<Vec<Frame>, InputError> {
    let path = path.as_ref();
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "extxyz" | "xyz" => read_extxyz(path, options),
        "json" => read_pymatgen_json(path, options),
        _ => Err(InputError::new(
            path.display().to_string(),
            format!("unknown structure file type '.{extension}'"),
        )
        .with_hint("use extended XYZ (.extxyz or .xyz, as ASE writes it) or a JSON list of pymatgen structures (.json)")),
    }
}

/// Reads a whole file as UTF-8 text.
fn read_text(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|err| {
        InputError::new(path.display().to_string(), format!("cannot read the file: {err}"))
            .with_hint("check the path and that the file is readable UTF-8 text")
    })
}

/// `file, frame 3 (line 17)`: where a problem is.
fn frame_location(file: &str, frame: usize, line: usize) -> String {
    format!("{file}, frame {frame} (line {line})")
}

/// Turns a structure problem into an input error; `atom_line` names where atom i is.
fn structure_error(
    file: &str,
    frame: usize,
    frame_line: usize,
    problem: StructureProblem,
    atom_line: impl Fn(usize) -> String,
) -> InputError {
    let mut what = problem.problem;
    if !problem.atoms.is_empty() {
        let lines: Vec<String> = problem.atoms.iter().map(|&i| atom_line(i)).collect();
        what = format!("{what} [{}]", lines.join(", "));
    }
    InputError::new(frame_location(file, frame, frame_line), what).with_hint(problem.hint)
}

/// Parses a number and insists that it is finite.
fn parse_finite(token: &str) -> Option<f64> {
    token.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Explains a token that is not a finite number.
fn number_problem(token: &str, what: &str) -> String {
    match token.parse::<f64>() {
        Ok(_) => format!("{what} '{token}' is not finite (NaN or infinity)"),
        Err(_) => format!("{what} '{token}' is not a number"),
    }
}
