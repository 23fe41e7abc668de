//! A small line chart as a PNG, drawn by hand into an RGB buffer: enough
//! to show the series that tripped an alert inside an e-mail, without a
//! plotting library and its font stack.

use crate::engine::Chart;

const BG: [u8; 3] = [255, 255, 255];
const AXIS: [u8; 3] = [160, 160, 160];
const LINE: [u8; 3] = [31, 119, 180];
const LIMIT: [u8; 3] = [214, 39, 40];

struct Canvas {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self {
            w,
            h,
            px: BG.repeat((w * h) as usize),
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = ((y as u32 * self.w + x as u32) * 3) as usize;
        self.px[i..i + 3].copy_from_slice(&c);
    }

    /// Bresenham, with a two-pixel pen so the line survives scaling.
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], dash: bool) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err, mut n) = (x0, y0, dx + dy, 0u32);
        loop {
            if !dash || (n / 4) % 2 == 0 {
                self.set(x, y, c);
                self.set(x, y + 1, c);
            }
            n += 1;
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// Renders `chart` as a `w`×`h` PNG; `None` without any point to draw.
/// Non-finite values are marked by a red tick at the top edge.
pub fn render_png(chart: &Chart, w: u32, h: u32) -> Option<Vec<u8>> {
    let (w, h) = (w.clamp(64, 2000), h.clamp(48, 1200));
    let n = chart.times.len().min(chart.values.len());
    if n == 0 {
        return None;
    }
    let (t0, t1) = chart.times[..n]
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
    let mut lo = f64::MAX;
    let mut hi = f64::MIN;
    for v in chart.values[..n].iter().chain(chart.threshold.iter()) {
        if v.is_finite() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.08;
    let (lo, hi) = (lo - pad, hi + pad);
    let (left, right, top, bottom) = (8i64, w as i64 - 8, 8i64, h as i64 - 8);
    let sx = |t: f64| {
        if t1 > t0 {
            left + ((t - t0) / (t1 - t0) * (right - left) as f64) as i64
        } else {
            (left + right) / 2
        }
    };
    let sy = |v: f64| bottom - ((v - lo) / (hi - lo) * (bottom - top) as f64) as i64;
    let mut c = Canvas::new(w, h);
    c.line((left, bottom), (right, bottom), AXIS, false);
    c.line((left, top), (left, bottom), AXIS, false);
    if let Some(t) = chart.threshold.filter(|t| t.is_finite()) {
        c.line((left, sy(t)), (right, sy(t)), LIMIT, true);
    }
    let mut prev: Option<(i64, i64)> = None;
    for i in 0..n {
        let (t, v) = (chart.times[i], chart.values[i]);
        if !v.is_finite() {
            let x = sx(t);
            c.line((x, top), (x, top + 10), LIMIT, false);
            prev = None;
            continue;
        }
        let p = (sx(t), sy(v));
        match prev {
            Some(q) => c.line(q, p, LINE, false),
            None => c.line(p, p, LINE, false),
        }
        prev = Some(p);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().ok()?;
        writer.write_image_data(&c.px).ok()?;
        writer.finish().ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_decodable_png() {
        let chart = Chart {
            title: "gpu/0/temperature".into(),
            times: (0..100).map(f64::from).collect(),
            values: (0..100)
                .map(|i| {
                    if i == 50 {
                        f64::NAN
                    } else {
                        60.0 + f64::from(i % 30)
                    }
                })
                .collect(),
            threshold: Some(85.0),
        };
        let png_bytes = render_png(&chart, 320, 160).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (320, 160));
        // Some pixels are the line's colour.
        assert!(buf.chunks(3).any(|p| p == LINE));
        assert!(buf.chunks(3).any(|p| p == LIMIT));
        let empty = Chart {
            times: vec![],
            values: vec![],
            ..chart
        };
        assert!(render_png(&empty, 320, 160).is_none());
    }
}
