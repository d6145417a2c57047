//! Axis ranges and tick positions: padded ranges, "nice" tick steps (1, 2, 2.5, 5 × 10ᵏ),
//! integer ticks and decade ticks, with labels printed to the precision the step needs.

/// A linear axis: the drawn range and where its labelled ticks sit.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    /// Digits after the decimal point in tick labels.
    pub decimals: usize,
}

impl Scale {
    /// A linear scale covering `[min, max]` with `pad` (a fraction of the span) added on
    /// both sides; a zero span gets a sensible width around its value.
    pub fn padded(min: f64, max: f64, pad: f64) -> Scale {
        let (lo, hi) = widen(min, max);
        let margin = (hi - lo) * pad;
        Scale::exact(lo - margin, hi + margin)
    }

    /// Like [`Scale::padded`], but a range that starts at or above zero starts at zero,
    /// so bar lengths stay proportional to their values.
    pub fn from_zero(min: f64, max: f64, pad: f64) -> Scale {
        let (lo, hi) = widen(min.min(0.0), max.max(0.0));
        let margin = (hi - lo) * pad;
        let lo = if lo >= 0.0 { 0.0 } else { lo - margin };
        let hi = if hi <= 0.0 { 0.0 } else { hi + margin };
        Scale::exact(lo, hi)
    }

    /// A linear scale drawn exactly over `[lo, hi]` with about six nice ticks inside.
    pub fn exact(lo: f64, hi: f64) -> Scale {
        let (lo, hi) = widen(lo, hi);
        let step = nice_step((hi - lo) / 6.0);
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        let ticks = (first..=last).map(|k| clean(k as f64 * step)).collect();
        Scale { lo, hi, ticks, decimals: decimals_for(step) }
    }

    /// A scale over integers `min..=max` (e.g. l_max) with half a unit of room either side;
    /// every integer is ticked when there are at most 15, otherwise a nice integer step.
    pub fn integers(min: f64, max: f64) -> Scale {
        let span = max - min;
        let (lo, hi) =
            if span <= 14.0 { (min - 0.5, max + 0.5) } else { (min - span * 0.03, max + span * 0.03) };
        let step = if span <= 14.0 { 1.0 } else { whole_step(span / 6.0) };
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        let ticks = (first..=last).map(|k| k as f64 * step).collect();
        Scale { lo, hi, ticks, decimals: 0 }
    }

    /// `value` printed to this scale's precision (never "-0").
    pub fn label(&self, value: f64) -> String {
        format_fixed(value, self.decimals)
    }

    /// The range with each tick's label, as charts draw it.
    pub fn ticks(&self) -> Ticks {
        let marks = self.ticks.iter().map(|&t| (t, self.label(t))).collect();
        Ticks { lo: self.lo, hi: self.hi, marks }
    }
}

/// What an axis draws: its range and labelled tick positions (in axis units).
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub marks: Vec<(f64, String)>,
}

impl Ticks {
    /// Categories at 0, 1, 2, … with half a slot of room at either end.
    pub fn categories<S: AsRef<str>>(names: &[S]) -> Ticks {
        let marks = names.iter().enumerate().map(|(i, n)| (i as f64, n.as_ref().to_string())).collect();
        Ticks { lo: -0.5, hi: names.len() as f64 - 0.5, marks }
    }

    /// The label of the tick nearest `value` (plotters asks by position).
    pub fn label_at(&self, value: f64) -> String {
        self.marks
            .iter()
            .min_by(|a, b| (a.0 - value).abs().total_cmp(&(b.0 - value).abs()))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }

    /// The longest label, in characters (to size the label area).
    pub fn widest_label(&self) -> usize {
        self.marks.iter().map(|(_, l)| l.chars().count()).max().unwrap_or(0)
    }
}

/// A logarithmic axis over positive values, in log10 units internally.
#[derive(Clone, Debug, PartialEq)]
pub struct LogScale {
    /// log10 of the drawn range's ends.
    pub lo: f64,
    pub hi: f64,
    /// Tick positions in log10 units, with their labels in the original units.
    pub ticks: Vec<(f64, String)>,
}

impl LogScale {
    /// A log scale covering the positive values `[min, max]`, padded by `pad` of the
    /// log span; ticks at decades, plus 2 and 5 times them when fewer than three decades show.
    pub fn padded(min: f64, max: f64, pad: f64) -> LogScale {
        let (lo, hi) = (min.log10(), max.log10());
        let (lo, hi) = if hi - lo < 1e-12 { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
        let margin = (hi - lo) * pad;
        LogScale::exact(lo - margin, hi + margin)
    }

    /// The range with each tick's label, as charts draw it.
    pub fn ticks(&self) -> Ticks {
        Ticks { lo: self.lo, hi: self.hi, marks: self.ticks.clone() }
    }

    /// A log scale drawn exactly over `[10^lo, 10^hi]`.
    pub fn exact(lo: f64, hi: f64) -> LogScale {
        let mantissas: &[f64] = if hi - lo < 3.0 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut ticks = Vec::new();
        for decade in (lo.floor() as i32)..=(hi.ceil() as i32) {
            for &m in mantissas {
                let value = m * 10f64.powi(decade);
                let at = value.log10();
                if at >= lo - 1e-9 && at <= hi + 1e-9 {
                    ticks.push((at, format_decade(m, decade)));
                }
            }
        }
        LogScale { lo, hi, ticks }
    }

    /// Where `value` (> 0) sits in log10 units.
    pub fn position(value: f64) -> f64 {
        value.log10()
    }
}

/// Makes a zero-width range usable: ±10 % around a non-zero value, ±1 around zero.
fn widen(min: f64, max: f64) -> (f64, f64) {
    if max - min > 1e-12 * max.abs().max(min.abs()).max(1e-300) {
        (min, max)
    } else {
        let half = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        (min - half, max + half)
    }
}

/// The nice step (1, 2, 2.5 or 5 × 10ᵏ) closest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let nice =
        [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|&n| normalised <= n * (1.0 + 1e-9)).unwrap_or(10.0);
    nice * magnitude
}

/// The whole-number step (1, 2 or 5 × 10ᵏ, at least 1) closest above `raw`.
fn whole_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1.0).log10().floor());
    let normalised = raw.max(1.0) / magnitude;
    let nice = [1.0, 2.0, 5.0, 10.0].into_iter().find(|&n| normalised <= n * (1.0 + 1e-9)).unwrap_or(10.0);
    nice * magnitude
}

/// Digits needed to print multiples of `step` exactly.
fn decimals_for(step: f64) -> usize {
    (0..12)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(12)
}

/// Removes floating-point dust from a tick (0.30000000000000004 → 0.3).
fn clean(value: f64) -> f64 {
    let rounded = (value * 1e12).round() / 1e12;
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// `value` with `decimals` digits, printing zero as "0…" rather than "-0…".
pub fn format_fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

/// A value shown with three significant digits (annotations, bar values).
pub fn format_significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    if (-3..6).contains(&magnitude) {
        format_fixed(value, (2 - magnitude).max(0) as usize)
    } else {
        format!("{value:.2e}")
    }
}

/// `m × 10^decade` in the original units: "0.002", "50", "1000", or "1e-05" far out.
fn format_decade(m: f64, decade: i32) -> String {
    if (-4..=5).contains(&decade) {
        format_fixed(m * 10f64.powi(decade), (-decade).max(0) as usize)
    } else {
        format!("{}e{decade}", m as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range_with_round_numbers() {
        let s = Scale::exact(0.28, 0.46);
        let labels: Vec<String> = s.ticks.iter().map(|t| s.label(*t)).collect();
        assert_eq!(labels, ["0.30", "0.35", "0.40", "0.45"]);
        let wide = Scale::exact(-3.0, 12.0);
        assert_eq!(wide.ticks, vec![-2.5, 0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(wide.label(5.0), "5.0");
    }

    #[test]
    fn integer_scale_ticks_every_integer() {
        let s = Scale::integers(0.0, 4.0);
        assert_eq!(s.ticks, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.lo, s.hi), (-0.5, 4.5));
        assert_eq!(s.label(3.0), "3");
        let trials = Scale::integers(0.0, 199.0);
        assert!(trials.ticks.iter().all(|t| t.fract() == 0.0));
        assert_eq!(trials.ticks[1] - trials.ticks[0], 50.0);
    }

    #[test]
    fn zero_span_and_zero_start() {
        let s = Scale::padded(2.0, 2.0, 0.05);
        assert!(s.lo < 2.0 && s.hi > 2.0);
        let z = Scale::from_zero(0.1, 0.4, 0.1);
        assert_eq!(z.lo, 0.0);
        assert!(z.hi > 0.4);
        assert_eq!(format_fixed(-0.0001, 2), "0.00");
    }

    #[test]
    fn log_ticks_are_labelled_in_original_units() {
        let s = LogScale::padded(1e-4, 0.5, 0.0);
        let labels: Vec<&str> = s.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.0001", "0.001", "0.01", "0.1"]);
        let narrow = LogScale::exact(0.0, 2.0);
        let labels: Vec<&str> = narrow.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["1", "2", "5", "10", "20", "50", "100"]);
    }
}
