//! The tables of a sweep (the paper's Table 2 and the data of its Fig. 4b
//! and 5b): test MAEs per setting (l_max) for each model kind as mean ± 95 %
//! CI over seeds, the best setting of each kind, per-crystal-system MAEs
//! of those settings, and unphysical predictions.

use super::collect::{setting_label, StudyData, SweepCell};
use super::stats::Estimate;
use super::tables::{Cell, Column, Table};
use crate::crystal::symmetry::CrystalSystem;
use crate::hpo::ParamValue;

/// Test metrics of the ablation, with their column titles.
pub const METRICS: [(&str, &str); 2] =
    [("test_eps_poly_mae", "ε_poly MAE"), ("test_anisotropy_mae", "a_r MAE")];

/// A sweep's cells, with the kinds and settings they span.
pub struct Sweep<'a> {
    pub data: &'a StudyData,
    pub cells: Vec<SweepCell<'a>>,
    /// Kinds in report order.
    pub kinds: Vec<String>,
    /// Distinct settings (parameters other than kind and seed), in order.
    pub settings: Vec<Vec<(String, ParamValue)>>,
}

impl<'a> Sweep<'a> {
    pub fn new(data: &'a StudyData) -> Sweep<'a> {
        let cells = super::collect::sweep_cells(data);
        let mut kinds: Vec<String> = Vec::new();
        let mut settings: Vec<Vec<(String, ParamValue)>> = Vec::new();
        for cell in &cells {
            if !kinds.contains(&cell.kind) {
                kinds.push(cell.kind.clone());
            }
            if !settings.contains(&cell.setting) {
                settings.push(cell.setting.clone());
            }
        }
        // Cells come ordered by kind, then setting: the first kind's order
        // is the settings' order; later kinds' extra settings sort in.
        settings.sort_by(|a, b| {
            let pos = |s: &Vec<(String, ParamValue)>| cells.iter().position(|c| &c.setting == s);
            let key = |s: &Vec<(String, ParamValue)>| s.iter().map(|(_, v)| v.as_f64()).collect::<Vec<_>>();
            key(a).partial_cmp(&key(b)).unwrap_or_else(|| pos(a).cmp(&pos(b)))
        });
        Sweep { data, cells, kinds, settings }
    }

    pub fn cell(&self, kind: &str, setting: &[(String, ParamValue)]) -> Option<&SweepCell<'a>> {
        self.cells.iter().find(|c| c.kind == kind && c.setting == setting)
    }

    /// The one parameter the settings vary (`lmax` in the paper's sweep), if only one.
    pub fn axis(&self) -> Option<&str> {
        match self.settings.first()?.as_slice() {
            [(name, _)] if self.settings.iter().all(|s| s.len() == 1 && &s[0].0 == name) => Some(name),
            _ => None,
        }
    }

    fn setting_title(&self) -> String {
        match self.axis() {
            Some("lmax") => "l_max".to_owned(),
            Some(name) => name.to_owned(),
            None => "setting".to_owned(),
        }
    }

    /// The row label of a setting: its value when one parameter varies.
    pub fn setting_text(&self, setting: &[(String, ParamValue)]) -> String {
        match (self.axis(), setting) {
            (Some(_), [(_, value)]) => value.to_string(),
            _ => setting_label(setting),
        }
    }

    /// `metric` of a cell as mean ± CI over its seeds, or "—" and why.
    pub fn metric_cell(&self, kind: &str, setting: &[(String, ParamValue)], metric: &str) -> Cell {
        let Some(cell) = self.cell(kind, setting) else {
            return Cell::missing(if self.planned(kind, setting) {
                "no trial yet (the sweep has not reached this cell)"
            } else {
                "not part of the sweep"
            });
        };
        if let Some(why) = cell.why_empty() {
            return Cell::missing(why);
        }
        match Estimate::at_95(&cell.metric_values(metric)) {
            Some(e) => Cell::estimate(e),
            None if metric.contains("anisotropy") => Cell::missing(
                "a_r undefined: every seed predicted a tensor with an eigenvalue ≤ 0 for some test structure",
            ),
            None => Cell::missing(format!("no {metric} recorded")),
        }
    }

    /// Whether the study file's `sweep.values` include this cell.
    fn planned(&self, kind: &str, setting: &[(String, ParamValue)]) -> bool {
        let Some(values) = self.data.config_at(&["sweep", "values"]) else { return false };
        let has = |name: &str, value: &str| {
            values.get(name).and_then(|v| v.as_sequence()).is_some_and(|list| {
                list.iter().any(|v| serde_yaml::to_string(v).is_ok_and(|t| t.trim() == value))
            })
        };
        let kind_ok = values.get("kind").is_none() || has("kind", kind);
        kind_ok && setting.iter().all(|(name, value)| has(name, &value.to_string()))
    }

    /// The best cell of `kind` by the mean validation objective over seeds.
    pub fn best_cell(&self, kind: &str) -> Option<(&SweepCell<'a>, Estimate)> {
        let direction = self.data.direction();
        self.cells
            .iter()
            .filter(|c| c.kind == kind)
            .filter_map(|c| Estimate::at_95(&c.objective_values()).map(|e| (c, e)))
            .reduce(|a, b| if direction.better(b.1.mean, a.1.mean) { b } else { a })
    }

    /// Table 2: test ε_poly and a_r MAE per setting, one column per kind;
    /// the lowest mean of each metric in bold.
    pub fn ablation_table(&self) -> Table {
        let mut columns = vec![Column::new("setting", self.setting_title())];
        for (metric, title) in METRICS {
            for kind in &self.kinds {
                columns.push(Column::new(format!("{metric}_{kind}"), format!("{title} {kind}")));
            }
        }
        let mut table = Table::new("ablation", "Test MAE by model and setting", columns);
        if self.axis() == Some("lmax") {
            table.title = "Test MAE by l_max: equivariant (0e+2e) and scalar (6×0e) models".to_owned();
        }
        for setting in &self.settings {
            let mut row = vec![Cell::text(self.setting_text(setting))];
            for (metric, _) in METRICS {
                row.extend(self.kinds.iter().map(|kind| self.metric_cell(kind, setting, metric)));
            }
            table.rows.push(row);
        }
        let k = self.kinds.len();
        for m in 0..METRICS.len() {
            table.bold_best(&(1 + m * k..1 + (m + 1) * k).collect::<Vec<_>>(), false);
        }
        table.notes.push(format!(
            "test split; bold: the lowest mean of each metric; ε_poly = mean eigenvalue, a_r = largest / smallest \
             eigenvalue of ε∞; seeds per cell: {}",
            self.seeds_per_cell()
        ));
        table
    }

    fn seeds_per_cell(&self) -> usize {
        self.cells.iter().map(|c| c.trials.len()).max().unwrap_or(0)
    }

    /// The best setting of each kind by the validation objective, and its test metrics.
    pub fn best_table(&self) -> Table {
        let objective = self.data.objective_name();
        let columns = vec![
            Column::new("kind", "model"),
            Column::new("setting", format!("best {}", self.setting_title())),
            Column::new("objective", objective.clone()),
            Column::new("test_eps_poly_mae", "test ε_poly MAE"),
            Column::new("test_anisotropy_mae", "test a_r MAE"),
            Column::new("test_unphysical", "unphysical test predictions"),
        ];
        let mut table = Table::new("best", "Best setting of each model and its test errors", columns);
        for kind in &self.kinds {
            let Some((cell, objective)) = self.best_cell(kind) else {
                let why = "no COMPLETE trial";
                table.rows.push(vec![
                    Cell::text(kind),
                    Cell::missing(why),
                    Cell::missing(why),
                    Cell::missing(why),
                    Cell::missing(why),
                    Cell::missing(why),
                ]);
                continue;
            };
            let mut row = vec![
                Cell::text(kind),
                Cell::text(self.setting_text(&cell.setting)),
                Cell::estimate(objective),
            ];
            for metric in ["test_eps_poly_mae", "test_anisotropy_mae", "test_unphysical"] {
                row.push(self.metric_cell(kind, &cell.setting, metric));
            }
            table.rows.push(row);
        }
        table.bold_best(&[2], self.data.direction() == crate::hpo::Direction::Maximize);
        for c in 3..6 {
            table.bold_best(&[c], false);
        }
        table.notes.push(format!(
            "best setting: the best mean validation objective ({objective}) over seeds, per model"
        ));
        table
    }

    /// Per crystal system: test MAEs of each kind's best setting (Fig. 4b and 5b).
    pub fn systems_table(&self) -> Table {
        let best: Vec<(String, Option<&SweepCell>)> =
            self.kinds.iter().map(|k| (k.clone(), self.best_cell(k).map(|(c, _)| c))).collect();
        let mut columns =
            vec![Column::new("crystal_system", "crystal system"), Column::new("count", "test structures")];
        for (metric, title) in METRICS {
            for kind in &self.kinds {
                columns.push(Column::new(format!("{metric}_{kind}"), format!("{title} {kind}")));
            }
        }
        let mut table =
            Table::new("crystal_systems", "Test MAE per crystal system, best setting of each model", columns);
        for system in CrystalSystem::ALL.map(CrystalSystem::name) {
            let count = self
                .data
                .complete()
                .find_map(|t| t.metrics.get(&format!("test_count_{system}")).copied())
                .unwrap_or(0.0);
            let mut row = vec![Cell::text(system), Cell::number(count)];
            for (metric, _) in METRICS {
                for (kind, cell) in &best {
                    row.push(match cell {
                        Some(cell) if count > 0.0 => {
                            self.metric_cell(kind, &cell.setting, &format!("{metric}_{system}"))
                        }
                        Some(_) => Cell::missing("no test structure of this crystal system"),
                        None => Cell::missing("no COMPLETE trial"),
                    });
                }
            }
            table.rows.push(row);
        }
        let k = self.kinds.len();
        for m in 0..METRICS.len() {
            // Per system (row), the better model is what the figure shows;
            // bold marks the lower MAE of the models in each row.
            for row in &mut table.rows {
                let cols: Vec<usize> = (2 + m * k..2 + (m + 1) * k).collect();
                let best = cols.iter().filter_map(|&c| row[c].as_number()).reduce(f64::min);
                for &c in &cols {
                    row[c].bold = best.is_some() && row[c].as_number() == best && k > 1;
                }
            }
        }
        let chosen: Vec<String> = best
            .iter()
            .filter_map(|(kind, cell)| cell.map(|c| format!("{kind}: {}", c.setting_label())))
            .collect();
        table.notes.push(format!(
            "cells: {}; bold: the lower MAE of the models in each row",
            if chosen.is_empty() { "none".to_owned() } else { chosen.join("; ") }
        ));
        table
    }

    /// Unphysical test predictions (smallest eigenvalue below 1) per cell.
    pub fn unphysical_table(&self) -> Table {
        let mut columns = vec![Column::new("setting", self.setting_title())];
        columns.extend(self.kinds.iter().map(|k| Column::new(format!("test_unphysical_{k}"), k.clone())));
        let test_size = self.data.attrs.get("dataset").and_then(|d| d["split"][2].as_u64());
        let mut table =
            Table::new("unphysical", "Unphysical test predictions (an eigenvalue below 1)", columns);
        for setting in &self.settings {
            let mut row = vec![Cell::text(self.setting_text(setting))];
            row.extend(self.kinds.iter().map(|kind| self.metric_cell(kind, setting, "test_unphysical")));
            table.rows.push(row);
        }
        if let Some(n) = test_size {
            table.notes.push(format!("count per trial among {n} test structures"));
        }
        table
    }

    /// Per kind, the points (setting value, estimate of `metric`) of a line
    /// plot over the single swept parameter; empty without one.
    pub fn line_points(&self, metric: &str) -> Vec<(String, Vec<(f64, Estimate)>)> {
        if self.axis().is_none() {
            return Vec::new();
        }
        self.kinds
            .iter()
            .map(|kind| {
                let points = self
                    .settings
                    .iter()
                    .filter_map(|s| {
                        let x = s[0].1.as_f64()?;
                        let cell = self.cell(kind, s)?;
                        Estimate::at_95(&cell.metric_values(metric)).map(|e| (x, e))
                    })
                    .collect();
                (kind.clone(), points)
            })
            .collect()
    }
}
