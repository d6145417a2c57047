//! Train / validation / test splits: seeded random, or fixed from a JSON file
//! `{"train": [...], "val": [...], "test": [...]}` of 0-based frame numbers.

use std::path::Path;

use anyhow::Result;
use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// Relative sizes of the three parts (normalised; default 80/10/10).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitRatios {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self { train: 0.8, val: 0.1, test: 0.1 }
    }
}

/// A split as positions into a list of entries (or graphs) of a data set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

#[derive(Deserialize)]
struct SplitFile {
    train: Vec<i64>,
    val: Vec<i64>,
    test: Vec<i64>,
}

impl Split {
    /// Shuffles `0..n` with ChaCha8 from `seed` (Fisher–Yates on 64-bit
    /// draws, the same on every platform) and cuts it: train gets
    /// ⌊n·train⌋, val ⌊n·val⌋, test the rest.
    pub fn random(n: usize, ratios: &SplitRatios, seed: u64) -> Result<Self> {
        let parts = [ratios.train, ratios.val, ratios.test];
        let total: f64 = parts.iter().sum();
        if parts.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || total.is_nan() || total <= 0.0 {
            return Err(InputError::new(
                "split ratios",
                format!("{parts:?} are not non-negative numbers with a positive sum"),
            )
            .with_hint("use e.g. 0.8 / 0.1 / 0.1")
            .into());
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let n_train = ((n as f64) * ratios.train / total).floor() as usize;
        let n_val = (((n as f64) * ratios.val / total).floor() as usize).min(n - n_train);
        let test = order.split_off(n_train + n_val);
        let val = order.split_off(n_train);
        Ok(Self { train: order, val, test })
    }

    /// Reads a split of frame numbers and maps it to positions in `frames`
    /// (the frame number of each kept entry). `frames_read` is how many
    /// frames the source had, to tell a dropped frame from a missing one.
    pub fn from_json_file(path: &Path, frames: &[usize], frames_read: usize) -> Result<Self> {
        let location = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(&location, format!("cannot read the split file: {e}")))?;
        let file: SplitFile = serde_json::from_str(&text).map_err(|e| {
            InputError::new(&location, format!("not a split file: {e}")).with_hint(
                r#"expected {"train": [...], "val": [...], "test": [...]} of 0-based frame numbers"#,
            )
        })?;
        let mut position = vec![usize::MAX; frames_read];
        for (k, &f) in frames.iter().enumerate() {
            if f < frames_read {
                position[f] = k;
            }
        }
        let mut used = vec![false; frames_read];
        let mut map = |part: &str, indices: &[i64]| -> Result<Vec<usize>> {
            indices
                .iter()
                .map(|&i| {
                    let bad = |problem: String| {
                        InputError::new(&location, format!("\"{part}\": frame {i} {problem}"))
                    };
                    if i < 0 || i as usize >= frames_read {
                        return Err(bad(format!(
                            "does not exist (the data has {frames_read} frames, numbered from 0)"
                        ))
                        .with_hint("use the split file made for this data file")
                        .into());
                    }
                    let i = i as usize;
                    if position[i] == usize::MAX {
                        return Err(bad("was dropped by the cleaning".into())
                            .with_hint("use the split file made with the same cleaning thresholds")
                            .into());
                    }
                    if std::mem::replace(&mut used[i], true) {
                        return Err(bad("appears more than once".into()).into());
                    }
                    Ok(position[i])
                })
                .collect()
        };
        Ok(Self {
            train: map("train", &file.train)?,
            val: map("val", &file.val)?,
            test: map("test", &file.test)?,
        })
    }

    /// The split as frame numbers, the JSON a split file holds.
    pub fn to_json(&self, frames: &[usize]) -> serde_json::Value {
        let part = |p: &[usize]| p.iter().map(|&k| frames[k]).collect::<Vec<_>>();
        serde_json::json!({"train": part(&self.train), "val": part(&self.val), "test": part(&self.test)})
    }

    /// (train, val, test) sizes.
    pub fn sizes(&self) -> [usize; 3] {
        [self.train.len(), self.val.len(), self.test.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_split_is_a_seeded_partition() {
        let split = Split::random(1996, &SplitRatios::default(), 42).unwrap();
        assert_eq!(split.sizes(), [1596, 199, 201]);
        let mut all: Vec<usize> = [split.train.clone(), split.val.clone(), split.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..1996).collect::<Vec<_>>());
        assert_eq!(split, Split::random(1996, &SplitRatios::default(), 42).unwrap());
        assert_ne!(split, Split::random(1996, &SplitRatios::default(), 43).unwrap());
        assert!(Split::random(10, &SplitRatios { train: -1.0, val: 0.1, test: 0.1 }, 0).is_err());
    }

    #[test]
    fn split_file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.json");
        let frames = [0, 2, 3, 5]; // frames 1 and 4 dropped, 6 frames read
        std::fs::write(&path, r#"{"train": [0, 5], "val": [3], "test": [2]}"#).unwrap();
        let split = Split::from_json_file(&path, &frames, 6).unwrap();
        assert_eq!(split, Split { train: vec![0, 3], val: vec![2], test: vec![1] });
        assert_eq!(split.to_json(&frames)["train"], serde_json::json!([0, 5]));
        for (text, needle) in [
            (r#"{"train": [1], "val": [], "test": []}"#, "dropped"),
            (r#"{"train": [9], "val": [], "test": []}"#, "does not exist"),
            (r#"{"train": [0], "val": [0], "test": []}"#, "more than once"),
            (r#"{"train": [0]}"#, "not a split file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Split::from_json_file(&path, &frames, 6).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2);
            let message = err.to_string();
            assert!(message.contains(needle) && message.contains("split.json"), "{message}");
        }
    }
}
