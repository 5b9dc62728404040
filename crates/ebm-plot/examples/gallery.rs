//! Renders one of every figure ebm-plot makes, from synthetic data, into a folder (first argument, default
//! `<temp>/ebm-plot-gallery`), to eyeball the output: `cargo run -p ebm-plot --example gallery -- /tmp/figs`.

use ebm_plot::{
    colorbar, diverging, font, grid_points, heatmap, hist2d, histogram_chart, image_grid, line_chart, palette, panels,
    scatter, viridis, Anchor, Bounds, Canvas, Figure, GridLayout, LineChart, Scale, Series, ValueRange,
};
use std::path::PathBuf;

/// A tiny deterministic Gaussian generator (no rand dependency): xorshift plus Box-Muller.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Centres of an 8-component ring mixture, the classic toy EBM target.
fn ring() -> Vec<[f32; 2]> {
    (0..8).map(|k| k as f32 * std::f32::consts::TAU / 8.0).map(|a| [2.0 * a.cos(), 2.0 * a.sin()]).collect()
}

fn energy(p: [f32; 2], sigma: f32) -> f32 {
    let s: f32 =
        ring().iter().map(|c| (-((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)) / (2.0 * sigma * sigma)).exp()).sum();
    -(s + 1e-30).ln()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir =
        std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("ebm-plot-gallery"));
    std::fs::create_dir_all(&dir)?;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);

    // 1. The font at three scales.
    let ascii: String = (32u8..=126).map(char::from).collect();
    let lines: Vec<&str> = vec![&ascii[..32], &ascii[32..64], &ascii[64..]];
    let mut sheet = Canvas::new(620, 330, [255, 255, 255]);
    let mut y = 8;
    for s in 1..=3u32 {
        for l in &lines {
            sheet.draw_text(8, y, l, s, [0, 0, 0], Anchor::Left);
            y += i64::from(font::LINE_HEIGHT * s);
        }
        y += 8;
    }
    sheet.draw_text(580, y, "E+ = -1.25e-3, loss: 0.042 (97%) [ok]", 2, [200, 30, 30], Anchor::Right);
    sheet.draw_text_vertical(600, 150, "vertical", 2, [30, 30, 200], Anchor::Centre);
    sheet.save_png(dir.join("font.png"))?;

    // 2. Toy 2D: data, model density exp(-E), samples, and samples over the density.
    let centres = ring();
    let data: Vec<[f32; 2]> = (0..2000)
        .map(|i| {
            let c = centres[i % 8];
            [c[0] + 0.15 * noise.normal(), c[1] + 0.15 * noise.normal()]
        })
        .collect();
    let samples: Vec<[f32; 2]> = (0..2000)
        .map(|i| {
            let c = centres[(i * 5) % 8];
            [c[0] * 0.9 + 0.3 * noise.normal(), c[1] * 0.9 + 0.3 * noise.normal()]
        })
        .collect();
    let b = Bounds::square(-3.0, 3.0);
    let n = 96;
    let density: Vec<f32> = grid_points(b, n, n).into_iter().map(|p| (-energy(p, 0.3)).exp()).collect();
    let density_panel = heatmap(&density, n, n, viridis, ValueRange::Auto)?.upscale(3);
    let hist_panel = heatmap(&hist2d(&samples, 64, b), 64, 64, viridis, ValueRange::Auto)?.resize_nearest(288, 288);
    let mut overlay = density_panel.clone();
    overlay.draw_points(&samples[..300], b, [255, 80, 80], 1, 0.9);
    let energies: Vec<f32> = grid_points(b, n, n).into_iter().map(|p| energy(p, 0.6)).collect();
    let mean = energies.iter().sum::<f32>() / energies.len() as f32;
    let centred: Vec<f32> = energies.iter().map(|e| e - mean).collect();
    let energy_panel = heatmap(&centred, n, n, diverging, ValueRange::Symmetric)?.upscale(3);
    let fig = Figure::new().title("ring of 8 Gaussians, iteration 12000").cols(3).render(&[
        ("data", scatter(&data, b, [31, 119, 180], 288)),
        ("model density exp(-E)", density_panel),
        ("samples (hist2d)", hist_panel),
        ("samples over density", overlay),
        ("E - mean(E)", energy_panel),
        ("samples", scatter(&samples, b, [214, 39, 40], 288)),
    ]);
    fig.save_png(dir.join("toy2d.png"))?;
    let range = ValueRange::Symmetric.resolve(&centred);
    panels(&[
        ("data", scatter(&data, b, [0, 0, 0], 200)),
        ("E - mean(E)", heatmap(&centred, n, n, diverging, range)?.resize_nearest(200, 200)),
        ("", colorbar(diverging, range, 200, 1)),
    ])
    .save_png(dir.join("panels_row.png"))?;

    // 3. Training curves.
    let iters = 5000;
    let mut e_pos = Vec::new();
    let mut e_neg = Vec::new();
    let mut loss = Vec::new();
    for i in (0..iters).step_by(10) {
        let t = i as f64;
        let pos = -2.0 - 3.0 * (1.0 - (-t / 800.0).exp()) + 0.2 * f64::from(noise.normal());
        let neg = -1.5 - 2.8 * (1.0 - (-t / 900.0).exp()) + 0.25 * f64::from(noise.normal());
        e_pos.push((t, pos));
        e_neg.push((t, neg));
        loss.push((t, if (2400..2430).contains(&i) { f64::NAN } else { pos - neg }));
    }
    let series = [
        Series::new("E+ (data)", e_pos, palette(0)),
        Series::new("E- (samples)", e_neg, palette(1)),
        Series::new("loss = E+ - E-", loss, palette(3)),
    ];
    line_chart(&series, "contrastive divergence", "iteration", "energy", 720, 420).save_png(dir.join("curves.png"))?;
    let decay: Vec<(f64, f64)> = (1..2000).map(|i| (f64::from(i), 3.0 / f64::from(i).powf(0.8))).collect();
    LineChart::new("score matching loss", "iteration", "loss", 480, 320)
        .y_scale(Scale::Log)
        .render(&[Series::new("loss", decay, palette(2))])
        .save_png(dir.join("curves_log.png"))?;

    let spiky: Vec<(f64, f64)> = (0..400)
        .map(|i| (f64::from(i) * 2500.0, if i % 97 == 50 { 3e4 } else { -20.0 + f64::from(noise.normal()) }))
        .collect();
    LineChart::new("symlog, long run", "step", "E", 360, 240)
        .y_scale(Scale::Symlog)
        .text_scale(1)
        .render(&[Series::new("E(x)", spiky, palette(4))])
        .save_png(dir.join("curves_symlog_small.png"))?;
    line_chart(&[], "nothing logged yet", "iteration", "loss", 360, 240).save_png(dir.join("curves_empty.png"))?;

    // 4. In- vs out-of-distribution energies.
    let ind: Vec<f32> = (0..4000).map(|_| -4.0 + 0.8 * noise.normal()).collect();
    let ood: Vec<f32> = (0..1500).map(|_| -1.5 + 1.2 * noise.normal()).collect();
    histogram_chart(&ind, &ood, ("in-distribution", "out-of-distribution"), 50, "energy of test inputs")
        .save_png(dir.join("ood_hist.png"))?;

    // 5. Sample grids: 28x28 "digits" drawn with the font itself, one class per row, and small RGB images.
    let (rows, per_row) = (10usize, 8usize);
    let mut digits = Vec::with_capacity(rows * per_row * 28 * 28);
    for class in 0..rows {
        for k in 0..per_row {
            let mut img = Canvas::new(28, 28, [0, 0, 0]);
            let ch = char::from(b'0' + class as u8);
            img.draw_text(
                8 + (k % 3) as i64 - 1,
                3 + (k % 2) as i64,
                &ch.to_string(),
                3,
                [255, 255, 255],
                Anchor::Left,
            );
            digits.extend(img.as_rgb8().chunks_exact(3).map(|p| f32::from(p[0]) / 255.0 * (0.6 + 0.05 * k as f32)));
        }
    }
    let layout = GridLayout::new(per_row).upscale(2).pad(2).row_labels(0..rows).background([40, 40, 40]);
    image_grid(&digits, [rows * per_row, 1, 28, 28], &layout)?.save_png(dir.join("digits_grid.png"))?;
    let rgb: Vec<f32> = (0..16)
        .flat_map(|k| {
            (0..3).flat_map(move |c| {
                (0..16 * 16).map(move |p| {
                    let (y, x) = (p / 16, p % 16);
                    let v = [x as f32 / 15.0, y as f32 / 15.0, k as f32 / 15.0][c];
                    if k == 5 && x == y {
                        f32::NAN
                    } else {
                        v
                    }
                })
            })
        })
        .collect();
    image_grid(&rgb, [16, 3, 16, 16], &GridLayout::new(8).upscale(4))?.save_png(dir.join("rgb_grid.png"))?;

    println!("wrote figures to {}", dir.display());
    Ok(())
}
