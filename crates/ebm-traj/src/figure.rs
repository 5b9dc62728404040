//! The top-down picture of futures: one row per source (the simulator, the EBM, the Gaussian MLP, the FC MLP),
//! one panel per future from the same start, each showing the table, the pusher's and the box's paths and their
//! final poses over the start's faded ones.

use crate::futures::Futures;
use crate::scene::{SceneConfig, State};
use ebm_plot::{Anchor, Canvas, Rgb};

const PANEL: u32 = 150;
const PAD: u32 = 8;
const LABEL_W: u32 = 70;
const TITLE_H: u32 = 22;
const PUSHER: Rgb = [31, 119, 180];
const BOX: Rgb = [214, 39, 40];

/// Renders `rows` (a label and the futures) for start `start`, `columns` futures each.
pub fn futures_figure(scene: &SceneConfig, rows: &[(&str, &Futures)], start: usize, columns: usize) -> Canvas {
    let w = LABEL_W + columns as u32 * (PANEL + PAD) + PAD;
    let h = TITLE_H + rows.len() as u32 * (PANEL + PAD) + PAD;
    let mut c = Canvas::new(w, h, [255, 255, 255]);
    let title = format!("futures from one held-out start ({} steps; pusher blue, box red)", rows[0].1.horizon);
    c.draw_text(i64::from(w / 2), 6, &title, 1, [0, 0, 0], Anchor::Centre);
    for (r, (label, f)) in rows.iter().enumerate() {
        let y0 = TITLE_H + r as u32 * (PANEL + PAD);
        c.draw_text(4, i64::from(y0 + PANEL / 2 - 4), label, 1, [0, 0, 0], Anchor::Left);
        for col in 0..columns.min(f.per_start) {
            let x0 = LABEL_W + col as u32 * (PANEL + PAD);
            panel(&mut c, scene, f, start, col, x0, y0);
        }
    }
    c
}

fn panel(c: &mut Canvas, scene: &SceneConfig, f: &Futures, start: usize, fut: usize, x0: u32, y0: u32) {
    c.fill_rect(i64::from(x0), i64::from(y0), PANEL, PANEL, [245, 240, 225]);
    c.stroke_rect(i64::from(x0), i64::from(y0), PANEL, PANEL, [90, 90, 90], 2);
    let scale = PANEL as f32 / (2.0 * scene.table_half);
    let to_px = |p: [f32; 2]| -> (i64, i64) {
        let x = x0 as f32 + (p[0] + scene.table_half) * scale;
        let y = y0 as f32 + (scene.table_half - p[1]) * scale; // y up
        (x.round() as i64, y.round() as i64)
    };
    let draw_box = |c: &mut Canvas, s: &State, colour: Rgb, thickness: u32| {
        let (ca, sa) = (s.box_angle.cos(), s.box_angle.sin());
        let h = scene.box_half;
        let corners: Vec<(i64, i64)> = [[-h, -h], [h, -h], [h, h], [-h, h]]
            .iter()
            .map(|q| to_px([s.box_pos[0] + ca * q[0] - sa * q[1], s.box_pos[1] + sa * q[0] + ca * q[1]]))
            .collect();
        for k in 0..4 {
            let (a, b) = (corners[k], corners[(k + 1) % 4]);
            c.draw_line(a.0, a.1, b.0, b.1, colour, thickness);
        }
    };
    let first = State::from_slice(f.state(start, fut, 0));
    draw_box(c, &first, [230, 170, 170], 1);
    let (px, py) = to_px(first.pusher);
    c.fill_disc(px, py, (scene.pusher_radius * scale) as u32, PUSHER, 0.25);
    for t in 1..=f.horizon {
        let (a, b) = (State::from_slice(f.state(start, fut, t - 1)), State::from_slice(f.state(start, fut, t)));
        for (pa, pb, col) in [(a.pusher, b.pusher, PUSHER), (a.box_pos, b.box_pos, BOX)] {
            let (p0, p1) = (to_px(pa), to_px(pb));
            c.draw_line(p0.0, p0.1, p1.0, p1.1, col, 1);
        }
    }
    let last = State::from_slice(f.state(start, fut, f.horizon));
    if last.pusher.iter().chain(&last.box_pos).all(|v| v.is_finite()) {
        draw_box(c, &last, BOX, 2);
        let (px, py) = to_px(last.pusher);
        c.fill_disc(px, py, (scene.pusher_radius * scale) as u32, PUSHER, 0.8);
    }
}
