//! Axis ticks: "nice" round values covering a data range, and short labels for them.

/// Round tick values `m * 10^k` (with `m` in 1, 2, 5) covering `lo..=hi`: the first tick is at or below `lo`,
/// the last at or above `hi`, and there are at most `max_ticks` of them (at least 2). Charts use the first and
/// last tick as axis limits, so axes always start and end on a labelled round number.
///
/// For example `nice_ticks(0.0, 97.0, 6)` is `[0, 20, 40, 60, 80, 100]`. An empty range (`lo == hi`) is
/// widened around the value; a non-finite bound gives `[0, 1]`.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    let (values, _) = ticks_with_step(lo, hi, max_ticks);
    values
}

/// [`nice_ticks`] plus the step between ticks, which decides how many decimals the labels need.
pub(crate) fn ticks_with_step(lo: f64, hi: f64, max_ticks: usize) -> (Vec<f64>, f64) {
    if !lo.is_finite() || !hi.is_finite() || !(hi - lo).is_finite() {
        return (vec![0.0, 1.0], 1.0);
    }
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let intervals = max_ticks.max(2) as f64 - 1.0;
    // Smallest step m * 10^k such that the covering ticks fit: start from the 10^k just below the raw step.
    let mut exponent = ((hi - lo) / intervals).log10().floor() as i32;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let step = m * 10f64.powi(exponent);
            let (first, last) = ((lo / step).floor(), (hi / step).ceil());
            if last - first <= intervals {
                let values = (first as i64..=last as i64).map(|i| tick_value(i as f64 * m, exponent)).collect();
                return (values, step);
            }
        }
        exponent += 1;
    }
}

/// `n * 10^exponent` computed so that 0.1, 0.3, 1e-7 come out as the closest doubles rather than
/// 0.30000000000000004: dividing by an exact power of ten is better rounded than multiplying by an inexact one.
fn tick_value(n: f64, exponent: i32) -> f64 {
    if exponent >= 0 {
        n * 10f64.powi(exponent)
    } else {
        n / 10f64.powi(-exponent)
    }
}

/// A short label for tick value `v` when ticks are `step` apart: as many decimals as the step needs and no
/// more (`0.25`, `40`, `-1.5`), and scientific notation (`2e5`, `1.5e-4`) for very large or very small
/// magnitudes where plain decimals get long.
pub fn format_tick(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let step = if step.is_finite() && step > 0.0 { step } else { v.abs().max(1.0) };
    let step_exp = step.log10().floor() as i32;
    // Decimals needed by the step: 0.25 -> 2, 0.5 -> 1, 20 -> 0 (steps are m * 10^k, possibly m = 2.5).
    let mut decimals = 0usize;
    while decimals < 12
        && ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs() > 1e-6
    {
        decimals += 1;
    }
    let magnitude = v.abs();
    if v == 0.0 {
        // Plain zero next to scientific neighbours ("1e-4"), otherwise as many decimals as its neighbours.
        let scientific = !(1e-3..1e5).contains(&step);
        return if scientific { "0".into() } else { format!("{:.decimals$}", 0.0) };
    }
    if !(1e-3..1e5).contains(&magnitude) {
        let value_exp = magnitude.log10().floor() as i32;
        let mantissa_decimals = (value_exp - step_exp).clamp(0, 6) as usize;
        let s = format!("{v:.mantissa_decimals$e}");
        return trim_mantissa(&s);
    }
    format!("{v:.decimals$}")
}

/// `1.50e5` -> `1.5e5`, `2.00e-4` -> `2e-4`.
fn trim_mantissa(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        _ => s.to_string(),
    }
}

/// How a chart maps data values to positions along its y axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Positions proportional to values.
    #[default]
    Linear,
    /// Positions proportional to `log10(value)`; non-positive values cannot be shown and are skipped. For
    /// losses that fall over orders of magnitude.
    Log,
    /// `sign(v) * log10(1 + |v|)`: logarithmic far from zero, linear-ish near it, defined for negative values.
    /// For energies, which can be of either sign and of any size.
    Symlog,
}

impl Scale {
    /// The position of `v` on this scale, or `None` if it cannot be shown (non-finite, or non-positive on a
    /// log scale).
    pub fn forward(self, v: f64) -> Option<f64> {
        let t = match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => return None,
            Scale::Symlog => v.signum() * v.abs().ln_1p() / std::f64::consts::LN_10,
        };
        t.is_finite().then_some(t)
    }

    /// The value at position `t` (inverse of [`Scale::forward`]).
    pub fn inverse(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log => 10f64.powf(t),
            Scale::Symlog => t.signum() * (10f64.powf(t.abs()) - 1.0),
        }
    }

    /// Tick values (in data units) and their labels for the positions `lo..=hi` on this scale, at most about
    /// `max_ticks` of them. Linear scales use [`nice_ticks`] (so the ticks extend to round numbers just
    /// outside the range); log scales use powers of ten inside the range, falling back to round linear values
    /// when the range spans less than a decade.
    pub fn ticks(self, lo: f64, hi: f64, max_ticks: usize) -> Vec<(f64, String)> {
        let linear = |lo: f64, hi: f64| {
            let (values, step) = ticks_with_step(lo, hi, max_ticks);
            values.into_iter().map(|v| (v, format_tick(v, step))).collect::<Vec<_>>()
        };
        if self == Scale::Linear {
            return linear(lo, hi);
        }
        let (tlo, thi) = (lo.min(hi), lo.max(hi));
        let mut out = Vec::new();
        let mut push_decade = |v: f64| out.push((v, format_tick(v, v.abs())));
        match self {
            Scale::Log => {
                for k in decades(tlo, thi, max_ticks) {
                    push_decade(10f64.powi(k));
                }
            }
            _ => {
                // Symlog positions: 0 at 0, +-k at +-(10^k - 1); label the round values 0, +-1, +-10, ...
                let reach = tlo.abs().max(thi.abs());
                let top = reach.floor() as i32;
                let stride = (top / max_ticks.max(2) as i32 + 1).max(1);
                let mut values = vec![0.0];
                let mut k = 0;
                while k <= top {
                    values.push(10f64.powi(k));
                    values.push(-(10f64.powi(k)));
                    k += stride;
                }
                values.sort_by(f64::total_cmp);
                for v in values {
                    if let Some(t) = self.forward(v) {
                        if t >= tlo - 1e-9 && t <= thi + 1e-9 {
                            push_decade(v);
                        }
                    }
                }
            }
        }
        if out.len() >= 2 {
            return out;
        }
        // Less than a decade on screen: round linear values inside the range.
        let (a, b) = (self.inverse(tlo), self.inverse(thi));
        let (values, step) = ticks_with_step(a, b, max_ticks);
        let inside: Vec<_> = values
            .into_iter()
            .filter(|&v| self.forward(v).is_some_and(|t| t >= tlo - 1e-9 && t <= thi + 1e-9))
            .map(|v| (v, format_tick(v, step)))
            .collect();
        if inside.len() >= 2 {
            inside
        } else {
            vec![(a, format_tick(a, (b - a).abs())), (b, format_tick(b, (b - a).abs()))]
        }
    }
}

/// Decade exponents inside `tlo..=thi` (log10 positions), thinned to at most about `max_ticks`.
fn decades(tlo: f64, thi: f64, max_ticks: usize) -> impl Iterator<Item = i32> {
    let (first, last) = ((tlo - 1e-9).ceil() as i32, (thi + 1e-9).floor() as i32);
    let count = (last - first + 1).max(0);
    let stride = ((count - 1) / max_ticks.max(2) as i32 + 1).max(1);
    (first..=last).step_by(stride as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range_with_round_numbers() {
        assert_eq!(nice_ticks(0.0, 97.0, 6), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 6), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(-3.2, 4.9, 10), vec![-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(nice_ticks(0.013, 0.031, 5), vec![0.01, 0.02, 0.03, 0.04]);
        assert_eq!(nice_ticks(1000.0, 10_000.0, 6), vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10_000.0]);
        assert_eq!(nice_ticks(5.0, 5.0, 6), vec![4.5, 5.0, 5.5]);
        assert_eq!(nice_ticks(0.0, 0.0, 6), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(nice_ticks(f64::NAN, 1.0, 6), vec![0.0, 1.0]);
        assert_eq!(nice_ticks(97.0, 0.0, 6), nice_ticks(0.0, 97.0, 6), "order of the bounds does not matter");
        for (lo, hi, n) in [(0.1, 0.7, 4), (-1e6, 3e6, 7), (2.5e-7, 9.1e-7, 5), (-17.0, -16.2, 3), (0.0, 1e300, 6)] {
            let t = nice_ticks(lo, hi, n);
            assert!(t.len() >= 2 && t.len() <= n.max(2), "{lo}..{hi}: {t:?}");
            assert!(t[0] <= lo && *t.last().unwrap() >= hi, "{lo}..{hi}: {t:?} does not cover");
            let step = t[1] - t[0];
            let m = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|n| (m - n).abs() < 1e-9), "{lo}..{hi}: step {step} is not nice");
        }
    }

    #[test]
    fn labels_are_short() {
        let labels = |lo, hi, n| {
            let (v, step) = ticks_with_step(lo, hi, n);
            v.iter().map(|&x| format_tick(x, step)).collect::<Vec<_>>()
        };
        assert_eq!(labels(0.0, 97.0, 6), ["0", "20", "40", "60", "80", "100"]);
        assert_eq!(labels(0.0, 1.0, 6), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(labels(0.013, 0.031, 5), ["0.01", "0.02", "0.03", "0.04"]);
        assert_eq!(labels(-1.0, 1.0, 3), ["-1", "0", "1"]);
        assert_eq!(labels(0.0, 4e5, 5), ["0", "1e5", "2e5", "3e5", "4e5"]);
        assert_eq!(labels(1.2e6, 1.5e6, 4), ["1.2e6", "1.3e6", "1.4e6", "1.5e6"]);
        assert_eq!(labels(0.0, 3e-4, 4), ["0", "1e-4", "2e-4", "3e-4"]);
        assert_eq!(format_tick(0.25, 0.25), "0.25");
        assert_eq!(format_tick(f64::INFINITY, 1.0), "inf");
    }

    #[test]
    fn log_and_symlog_ticks() {
        let log = Scale::Log;
        let (lo, hi) = (log.forward(0.003).unwrap(), log.forward(20.0).unwrap());
        let t: Vec<String> = log.ticks(lo, hi, 10).into_iter().map(|(_, s)| s).collect();
        assert_eq!(t, ["0.01", "0.1", "1", "10"]);
        assert_eq!(log.forward(0.0), None);
        assert_eq!(log.forward(-1.0), None);
        // Narrow log range: round linear values inside it.
        let (lo, hi) = (log.forward(2.0).unwrap(), log.forward(7.0).unwrap());
        let t: Vec<f64> = log.ticks(lo, hi, 6).into_iter().map(|(v, _)| v).collect();
        assert_eq!(t, [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let s = Scale::Symlog;
        assert_eq!(s.forward(0.0), Some(0.0));
        assert!((s.forward(-99.0).unwrap() + 2.0).abs() < 1e-12);
        assert!((s.inverse(s.forward(-37.0).unwrap()) + 37.0).abs() < 1e-9);
        let t: Vec<String> =
            s.ticks(s.forward(-150.0).unwrap(), s.forward(12.0).unwrap(), 10).into_iter().map(|x| x.1).collect();
        assert_eq!(t, ["-100", "-10", "-1", "0", "1", "10"]);
    }
}
