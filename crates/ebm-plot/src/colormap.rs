//! Colormaps (value in `[0, 1]` to colour) and a small categorical palette for chart series.
//!
//! Each map is a short table of control colours spaced evenly over `[0, 1]` and interpolated linearly in RGB,
//! which is visually indistinguishable from the full 256-entry tables at figure sizes and keeps the crate small.

use crate::canvas::Rgb;

/// Colour used for values that cannot be mapped (NaN): a magenta that appears in none of the maps, so a
/// diverged sampler or a broken energy shows up instead of hiding among ordinary values.
pub const BAD: Rgb = [255, 0, 255];

/// Viridis (perceptually uniform, readable in greyscale and by colour-blind viewers), sampled at ten evenly
/// spaced points from dark purple to yellow.
const VIRIDIS: [Rgb; 10] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x28, 0x78],
    [0x3e, 0x49, 0x89],
    [0x31, 0x68, 0x8e],
    [0x26, 0x82, 0x8e],
    [0x1f, 0x9e, 0x89],
    [0x35, 0xb7, 0x79],
    [0x6e, 0xce, 0x58],
    [0xb5, 0xde, 0x2b],
    [0xfd, 0xe7, 0x25],
];

/// ColorBrewer's eleven-class red-blue diverging scheme, ordered from blue (low) through near-white to red.
const DIVERGING: [Rgb; 11] = [
    [0x05, 0x30, 0x61],
    [0x21, 0x66, 0xac],
    [0x43, 0x93, 0xc3],
    [0x92, 0xc5, 0xde],
    [0xd1, 0xe5, 0xf0],
    [0xf7, 0xf7, 0xf7],
    [0xfd, 0xdb, 0xc7],
    [0xf4, 0xa5, 0x82],
    [0xd6, 0x60, 0x4d],
    [0xb2, 0x18, 0x2b],
    [0x67, 0x00, 0x1f],
];

/// Ten well-separated colours for chart series (the familiar "category10" set), first entry first.
pub const PALETTE: [Rgb; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

/// The `i`-th series colour, cycling through [`PALETTE`], so callers can colour any number of curves.
pub fn palette(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// Interpolates a table of evenly spaced control colours at `t`, clamped to `[0, 1]`; NaN gives [`BAD`].
pub fn interpolate(table: &[Rgb], t: f32) -> Rgb {
    if t.is_nan() || table.is_empty() {
        return BAD;
    }
    let pos = t.clamp(0.0, 1.0) * (table.len() - 1) as f32;
    let i = (pos.floor() as usize).min(table.len().saturating_sub(2));
    let (a, b) = (table[i], table[(i + 1).min(table.len() - 1)]);
    let f = pos - i as f32;
    std::array::from_fn(|k| (f32::from(a[k]) + (f32::from(b[k]) - f32::from(a[k])) * f).round() as u8)
}

/// Viridis: dark purple at 0, teal in the middle, yellow at 1. The default for densities and histograms.
/// `t` is clamped to `[0, 1]`; NaN gives [`BAD`].
pub fn viridis(t: f32) -> Rgb {
    interpolate(&VIRIDIS, t)
}

/// Blue at 0, near-white at 0.5, red at 1: for signed quantities such as energies or differences, where the
/// middle of the range means "zero". `t` is clamped to `[0, 1]`; NaN gives [`BAD`].
pub fn diverging(t: f32) -> Rgb {
    interpolate(&DIVERGING, t)
}

/// Black at 0 to white at 1, for greyscale images and print-friendly maps. NaN gives [`BAD`].
pub fn greys(t: f32) -> Rgb {
    if t.is_nan() {
        return BAD;
    }
    let v = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
    [v, v, v]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_midpoints() {
        assert_eq!(viridis(0.0), VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[9]);
        assert_eq!(viridis(-3.0), VIRIDIS[0]);
        assert_eq!(viridis(7.0), VIRIDIS[9]);
        assert_eq!(viridis(5.0 / 9.0), VIRIDIS[5]);
        assert_eq!(diverging(0.0), DIVERGING[0]);
        assert_eq!(diverging(0.5), [0xf7, 0xf7, 0xf7]);
        assert_eq!(diverging(1.0), DIVERGING[10]);
        assert_eq!(greys(0.5), [128, 128, 128]);
        for f in [viridis, diverging, greys] {
            assert_eq!(f(f32::NAN), BAD);
        }
    }

    #[test]
    fn interpolation_is_between_neighbours() {
        let c = interpolate(&[[0, 0, 0], [200, 100, 50]], 0.5);
        assert_eq!(c, [100, 50, 25]);
        assert_eq!(interpolate(&[[9, 9, 9]], 0.7), [9, 9, 9], "a one-entry table is a constant");
        // Viridis gets brighter (green channel rises) all the way up.
        let greens: Vec<u8> = (0..=100).map(|i| viridis(i as f32 / 100.0)[1]).collect();
        assert!(greens.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn palette_cycles() {
        assert_eq!(palette(0), PALETTE[0]);
        assert_eq!(palette(12), PALETTE[2]);
    }
}
