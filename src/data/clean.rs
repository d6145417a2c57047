//! The paper's cleaning: symmetrise each tensor, then drop entries with any
//! diagonal element below 1, with ε_poly above 15, and repeated structures.
//!
//! A frame is a *repeat* of an earlier kept frame when both have the same
//! number of atoms of each element, cell volumes equal to a relative 1e-3, and
//! equal interatomic-distance fingerprints: the sorted list of
//! (Z_i, Z_j, |r_ij|) over all pairs (periodic images included) closer than
//! [`FINGERPRINT_CUTOFF`], compared element-wise to `duplicate_tolerance` Å.
//! The fingerprint ignores rotations, translations, atom order and the choice
//! of an equally sized cell; it does not match a structure to its supercell.

use std::cell::OnceCell;
use std::collections::HashMap;

use serde::Serialize;

use crate::crystal::neighbors::neighbor_list;
use crate::crystal::Structure;
use crate::e3::cartesian::Mat3;
use crate::e3::sym3::eps_poly;

/// Pair distances up to this length (Å) form the duplicate fingerprint.
pub const FINGERPRINT_CUTOFF: f64 = 4.0;

/// Thresholds of the cleaning; the defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleaningOptions {
    /// Drop a tensor with any diagonal element below this (default 1).
    pub min_diagonal: f64,
    /// Drop a tensor with ε_poly (trace / 3) above this (default 15).
    pub max_eps_poly: f64,
    /// Drop repeated structures, keeping the first (default true).
    pub drop_duplicates: bool,
    /// Distance tolerance of the duplicate fingerprint, Å (default 1e-3).
    pub duplicate_tolerance: f64,
}

impl Default for CleaningOptions {
    fn default() -> Self {
        Self { min_diagonal: 1.0, max_eps_poly: 15.0, drop_duplicates: true, duplicate_tolerance: 1e-3 }
    }
}

/// How many frames were read, kept and dropped, by reason. A frame is
/// counted once, under the first reason in the order of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleaningReport {
    pub frames_read: usize,
    pub kept: usize,
    pub diagonal_below_min: usize,
    pub eps_poly_above_max: usize,
    pub duplicates: usize,
}

impl CleaningReport {
    pub fn dropped(&self) -> usize {
        self.diagonal_below_min + self.eps_poly_above_max + self.duplicates
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    DiagonalBelowMin,
    EpsPolyAboveMax,
    Duplicate,
}

/// (T + Tᵀ)/2.
pub fn symmetrised(t: &Mat3) -> Mat3 {
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| 0.5 * (t[i][j] + t[j][i])))
}

/// The tensor test of the cleaning (on the symmetrised tensor).
pub fn tensor_drop_reason(t: &Mat3, options: &CleaningOptions) -> Option<DropReason> {
    // Written so that a NaN diagonal fails the first test (then ε_poly is a number).
    if !(0..3).all(|k| t[k][k] >= options.min_diagonal) {
        Some(DropReason::DiagonalBelowMin)
    } else if eps_poly(t) > options.max_eps_poly {
        Some(DropReason::EpsPolyAboveMax)
    } else {
        None
    }
}

/// Finds repeated structures among those offered, in order. Fingerprints
/// are computed only for structures whose composition and volume match.
#[derive(Default)]
pub struct DuplicateFinder {
    tolerance: f64,
    /// Kept structures by composition.
    seen: HashMap<Vec<(u8, usize)>, Vec<Seen>>,
}

struct Seen {
    volume: f64,
    structure: Structure,
    fingerprint: OnceCell<Vec<(u8, u8, f64)>>,
}

impl DuplicateFinder {
    pub fn new(tolerance: f64) -> Self {
        Self { tolerance, seen: HashMap::new() }
    }

    /// True when `structure` repeats one offered before; otherwise remembers it.
    pub fn is_repeat(&mut self, structure: &Structure) -> bool {
        let volume = structure.volume().abs();
        let candidates = self.seen.entry(composition(structure)).or_default();
        let mine = OnceCell::new();
        for seen in candidates.iter() {
            if (seen.volume - volume).abs() > 1e-3 * volume {
                continue;
            }
            let mine = mine.get_or_init(|| distance_fingerprint(structure));
            let theirs = seen.fingerprint.get_or_init(|| distance_fingerprint(&seen.structure));
            if mine.len() == theirs.len()
                && mine
                    .iter()
                    .zip(theirs)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1 && (a.2 - b.2).abs() <= self.tolerance)
            {
                return true;
            }
        }
        candidates.push(Seen { volume, structure: structure.clone(), fingerprint: mine });
        false
    }
}

fn composition(structure: &Structure) -> Vec<(u8, usize)> {
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for &z in &structure.numbers {
        match counts.iter_mut().find(|c| c.0 == z) {
            Some(c) => c.1 += 1,
            None => counts.push((z, 1)),
        }
    }
    counts.sort_unstable();
    counts
}

fn distance_fingerprint(structure: &Structure) -> Vec<(u8, u8, f64)> {
    let edges = neighbor_list(structure, FINGERPRINT_CUTOFF, false);
    let mut pairs: Vec<(u8, u8, f64)> = (0..edges.src.len())
        .map(|e| {
            let (a, b) = (structure.numbers[edges.src[e] as usize], structure.numbers[edges.dst[e] as usize]);
            let v = edges.vectors[e];
            (a.min(b), a.max(b), (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt())
        })
        .collect();
    pairs.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)).then(x.2.total_cmp(&y.2)));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rock_salt(a: f64, shift: [f64; 3], swap: bool) -> Structure {
        let mut numbers = vec![11, 17];
        let mut positions = vec![shift, [shift[0] + a / 2.0, shift[1] + a / 2.0, shift[2] + a / 2.0]];
        if swap {
            numbers.reverse();
            positions.reverse();
        }
        Structure {
            lattice: [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]],
            numbers,
            positions,
        }
    }

    #[test]
    fn repeats_are_found_up_to_translation_and_order() {
        let mut finder = DuplicateFinder::new(1e-3);
        assert!(!finder.is_repeat(&rock_salt(5.64, [0.0; 3], false)));
        assert!(finder.is_repeat(&rock_salt(5.64, [0.3, 0.1, 0.2], true)));
        assert!(!finder.is_repeat(&rock_salt(5.70, [0.0; 3], false)));
    }

    #[test]
    fn tensor_thresholds() {
        let options = CleaningOptions::default();
        let diag = |a: f64, b: f64, c: f64| [[a, 0.0, 0.0], [0.0, b, 0.0], [0.0, 0.0, c]];
        assert_eq!(tensor_drop_reason(&diag(2.0, 3.0, 4.0), &options), None);
        assert_eq!(tensor_drop_reason(&diag(0.9, 3.0, 4.0), &options), Some(DropReason::DiagonalBelowMin));
        assert_eq!(tensor_drop_reason(&diag(16.0, 16.0, 16.0), &options), Some(DropReason::EpsPolyAboveMax));
        assert_eq!(
            tensor_drop_reason(&diag(f64::NAN, 3.0, 4.0), &options),
            Some(DropReason::DiagonalBelowMin)
        );
        let t = [[2.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        assert_eq!(symmetrised(&t)[0][1], 0.5);
    }
}
