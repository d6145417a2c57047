//! Per-structure predictions of a trained model as CSV: one row per
//! structure with its frame, id and crystal system, reference and predicted
//! ε_poly and anisotropy ratio a_r, and the six independent Cartesian
//! components of both tensors. A trial writes its test split's rows to
//! `trials/<n>/test_predictions.csv`; parity plots are drawn from them.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::data::Graph;
use crate::e3::cartesian::{irreps_to_cartesian, Mat3};
use crate::e3::sym3::{anisotropy_ratio_checked, eps_poly};

/// File name of a trial's test predictions inside its folder.
pub const TEST_PREDICTIONS_FILE: &str = "test_predictions.csv";

/// Artefact kind under which a trial's test predictions are recorded.
pub const TEST_PREDICTIONS_KIND: &str = "test_predictions";

/// The six independent components of a symmetric tensor, in CSV column order.
const COMPONENTS: [(&str, usize, usize); 6] =
    [("xx", 0, 0), ("yy", 1, 1), ("zz", 2, 2), ("xy", 0, 1), ("xz", 0, 2), ("yz", 1, 2)];

/// One structure's reference and predicted ε∞ (Cartesian 3×3, symmetric).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// 0-based frame number in the data source.
    pub frame: usize,
    pub id: Option<String>,
    pub crystal_system: String,
    pub reference: Mat3,
    pub predicted: Mat3,
}

impl PredictionRow {
    pub fn eps_poly_reference(&self) -> f64 {
        eps_poly(&self.reference)
    }

    pub fn eps_poly_predicted(&self) -> f64 {
        eps_poly(&self.predicted)
    }

    pub fn anisotropy_reference(&self) -> Option<f64> {
        anisotropy_ratio_checked(&self.reference)
    }

    pub fn anisotropy_predicted(&self) -> Option<f64> {
        anisotropy_ratio_checked(&self.predicted)
    }
}

/// Rows of `predictions` (irreps 0e+2e, one per position) for `graphs[positions[k]]`.
pub fn prediction_rows(
    graphs: &[Graph],
    positions: &[usize],
    predictions: &[[f64; 6]],
) -> Vec<PredictionRow> {
    positions
        .iter()
        .zip(predictions)
        .map(|(&k, pred)| {
            let g = &graphs[k];
            PredictionRow {
                frame: g.frame,
                id: g.id.clone(),
                crystal_system: g.crystal_system.name().to_owned(),
                reference: g.target_cartesian,
                predicted: irreps_to_cartesian(pred),
            }
        })
        .collect()
}

fn header() -> Vec<String> {
    let mut h: Vec<String> = ["frame", "id", "crystal_system"].map(String::from).to_vec();
    h.extend(["eps_poly_ref", "eps_poly_pred", "anisotropy_ref", "anisotropy_pred"].map(String::from));
    for side in ["ref", "pred"] {
        h.extend(COMPONENTS.iter().map(|(name, _, _)| format!("{side}_{name}")));
    }
    h
}

/// Writes `rows` as CSV to `path` (atomically: a temporary file, then a rename).
pub fn write_csv(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    let cell = |v: Option<f64>| v.map(|v| format!("{v:?}")).unwrap_or_default();
    let mut out = Vec::new();
    crate::storage::export::write_record(&mut out, &header())?;
    for row in rows {
        let mut record = vec![
            row.frame.to_string(),
            row.id.clone().unwrap_or_default(),
            row.crystal_system.clone(),
            cell(Some(row.eps_poly_reference())),
            cell(Some(row.eps_poly_predicted())),
            cell(row.anisotropy_reference()),
            cell(row.anisotropy_predicted()),
        ];
        for m in [&row.reference, &row.predicted] {
            record.extend(COMPONENTS.iter().map(|&(_, i, j)| cell(Some(m[i][j]))));
        }
        crate::storage::export::write_record(&mut out, &record)?;
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, out).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a file written by [`write_csv`]; the tensors are rebuilt from the
/// component columns.
pub fn read_csv(path: &Path) -> Result<Vec<PredictionRow>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = crate::storage::export::parse_csv(&text).into_iter();
    let head = records.next().ok_or_else(|| anyhow!("{} is empty", path.display()))?;
    let column = |name: &str| {
        head.iter().position(|h| h == name).ok_or_else(|| anyhow!("{} has no column {name}", path.display()))
    };
    let frame = column("frame")?;
    let id = column("id")?;
    let system = column("crystal_system")?;
    let mut tensor_columns = Vec::new();
    for side in ["ref", "pred"] {
        for (name, i, j) in COMPONENTS {
            tensor_columns.push((column(&format!("{side}_{name}"))?, i, j));
        }
    }
    let mut rows = Vec::new();
    for (line, record) in records.enumerate() {
        let at = |c: usize| record.get(c).map(String::as_str).unwrap_or("");
        let number = |c: usize| -> Result<f64> {
            at(c)
                .parse::<f64>()
                .map_err(|_| anyhow!("{}, row {}: {:?} is no number", path.display(), line + 2, at(c)))
        };
        let mut tensors = [[[0.0; 3]; 3]; 2];
        for (k, &(c, i, j)) in tensor_columns.iter().enumerate() {
            let v = number(c)?;
            tensors[k / 6][i][j] = v;
            tensors[k / 6][j][i] = v;
        }
        let Ok(frame) = at(frame).parse() else {
            bail!("{}, row {}: frame {:?} is no number", path.display(), line + 2, at(frame))
        };
        rows.push(PredictionRow {
            frame,
            id: Some(at(id).to_owned()).filter(|s| !s.is_empty()),
            crystal_system: at(system).to_owned(),
            reference: tensors[0],
            predicted: tensors[1],
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_csv() {
        let row = PredictionRow {
            frame: 7,
            id: Some("mp-1, \"odd\"".to_owned()),
            crystal_system: "cubic".to_owned(),
            reference: [[2.0, 0.1, 0.0], [0.1, 3.0, 0.2], [0.0, 0.2, 4.0]],
            predicted: [[0.5, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 2.0]],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TEST_PREDICTIONS_FILE);
        write_csv(&path, std::slice::from_ref(&row)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().next().unwrap().starts_with("frame,id,crystal_system,eps_poly_ref"));
        assert_eq!(text.lines().nth(1).unwrap().split(',').nth(7), Some(""), "a_r undefined: empty");
        assert_eq!(read_csv(&path).unwrap(), vec![row]);
    }
}
