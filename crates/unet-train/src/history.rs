//! The per-epoch record of a training run: `metrics.csv` and `curves.png`.

use image::RgbImage;
use plotters::prelude::*;

use crate::render::register_font;

/// One epoch's figures. Dice and IoU are means over the foreground classes,
/// from counts over the whole epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss (cross-entropy + Dice).
    pub train_loss: f64,
    /// Training Dice (with augmentation, model in training mode).
    pub train_dice: f64,
    /// Training IoU.
    pub train_iou: f64,
    /// Mean validation loss.
    pub val_loss: f64,
    /// Validation Dice.
    pub val_dice: f64,
    /// Validation IoU.
    pub val_iou: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

const COLUMNS: [&str; 9] = [
    "epoch",
    "lr",
    "train_loss",
    "train_dice",
    "train_iou",
    "val_loss",
    "val_dice",
    "val_iou",
    "seconds",
];

impl EpochRecord {
    fn values(&self) -> [f64; 9] {
        [
            self.epoch as f64,
            self.lr,
            self.train_loss,
            self.train_dice,
            self.train_iou,
            self.val_loss,
            self.val_dice,
            self.val_iou,
            self.seconds,
        ]
    }
}

/// `metrics.csv`: a header, then one row per epoch.
pub fn to_csv(records: &[EpochRecord]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for record in records {
        let values = record.values();
        let cells: Vec<String> = std::iter::once(record.epoch.to_string())
            .chain(values[1..].iter().map(|v| format!("{v:.6}")))
            .collect();
        out += &(cells.join(",") + "\n");
    }
    out
}

/// Reads what [`to_csv`] wrote; `None` if the text is not such a file.
pub fn from_csv(text: &str) -> Option<Vec<EpochRecord>> {
    let mut lines = text.lines();
    if lines.next()? != COLUMNS.join(",") {
        return None;
    }
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let v: Vec<f64> = line
                .split(',')
                .map(|cell| cell.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() == COLUMNS.len()).then(|| EpochRecord {
                epoch: v[0] as usize,
                lr: v[1],
                train_loss: v[2],
                train_dice: v[3],
                train_iou: v[4],
                val_loss: v[5],
                val_dice: v[6],
                val_iou: v[7],
                seconds: v[8],
            })
        })
        .collect()
}

/// `curves.png`: loss (left) and Dice and IoU (right) over the epochs, for
/// training and validation.
pub fn curves(records: &[EpochRecord]) -> RgbImage {
    let (width, height) = (1100u32, 420u32);
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    register_font();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        let (left, right) = root.split_horizontally(width / 2);
        let epochs = records.len().max(2) as f64;
        let x_range = 1.0..epochs.max(records.last().map_or(1, |r| r.epoch) as f64);
        let loss_max = records
            .iter()
            .flat_map(|r| [r.train_loss, r.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        type Series = (&'static str, fn(&EpochRecord) -> f64, RGBColor);
        let panels: [(&DrawingArea<_, _>, &str, std::ops::Range<f64>, Vec<Series>); 2] = [
            (
                &left,
                "loss (cross-entropy + Dice)",
                0.0..loss_max,
                vec![
                    ("train", |r| r.train_loss, BLUE),
                    ("validation", |r| r.val_loss, RED),
                ],
            ),
            (
                &right,
                "foreground Dice and IoU",
                0.0..1.0,
                vec![
                    ("train Dice", |r| r.train_dice, BLUE),
                    ("validation Dice", |r| r.val_dice, RED),
                    ("validation IoU", |r| r.val_iou, RGBColor(230, 140, 0)),
                ],
            ),
        ];
        for (area, title, y_range, series) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(x_range.clone(), y_range)
                .expect("drawing into a memory buffer cannot fail");
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style(("sans-serif", 14))
                .draw()
                .expect("drawing into a memory buffer cannot fail");
            for (name, value, color) in series {
                let points: Vec<(f64, f64)> = records
                    .iter()
                    .map(|r| (r.epoch as f64, value(r)))
                    .filter(|(_, v)| v.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .expect("drawing into a memory buffer cannot fail")
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(SeriesLabelPosition::MiddleRight)
                .draw()
                .expect("drawing into a memory buffer cannot fail");
        }
        root.present()
            .expect("drawing into a memory buffer cannot fail");
    }
    RgbImage::from_raw(width, height, buffer).expect("the buffer has width x height RGB pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 1e-3 / epoch as f64,
            train_loss: 1.0 / epoch as f64,
            train_dice: 0.5,
            train_iou: 0.25,
            val_loss: 0.9 / epoch as f64,
            val_dice: 0.6,
            val_iou: 0.4,
            seconds: 3.5,
        }
    }

    #[test]
    fn csv_round_trips_and_has_the_documented_columns() {
        let records = vec![record(1), record(2)];
        let csv = to_csv(&records);
        assert!(csv.starts_with(
            "epoch,lr,train_loss,train_dice,train_iou,val_loss,val_dice,val_iou,seconds\n"
        ));
        assert!(csv.contains("\n2,0.000500,0.500000,"));
        let back = from_csv(&csv).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].epoch, 2);
        assert!((back[1].val_loss - 0.45).abs() < 1e-6);
        assert_eq!(from_csv("a,b\n1,2\n"), None);
    }

    #[test]
    fn curves_draw_lines_in_both_panels() {
        let image = curves(&[record(1), record(2), record(3)]);
        assert_eq!(image.dimensions(), (1100, 420));
        let red = |x0: u32, x1: u32| {
            (x0..x1).any(|x| (0..420).any(|y| image.get_pixel(x, y).0 == [255, 0, 0]))
        };
        assert!(red(0, 550), "validation loss drawn");
        assert!(red(550, 1100), "validation Dice drawn");
    }
}
