//! Console output: a progress bar per epoch (loss, accuracy, images/s, ETA) and a summary table.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::{median, EvalResult};
use crate::train::callbacks::{Callback, EpochInfo, FitInfo, StepInfo};

/// Draws progress bars on stderr and prints one line per epoch and a final table.
pub struct ConsoleLogger {
    bar: Option<ProgressBar>,
    batches: u64,
    epochs: i64,
    show_bars: bool,
    rows: Vec<(i64, f64, f64, f64, f64, f64, f64)>,
    /// Validation ran on the test split (`data.val_split` = 0).
    val_is_test: bool,
}

impl ConsoleLogger {
    /// `show_bars = false` prints only the per-epoch lines (for logs and CI).
    pub fn new(show_bars: bool) -> Self {
        ConsoleLogger { bar: None, batches: 0, epochs: 0, show_bars, rows: Vec::new(), val_is_test: false }
    }
}

impl Callback for ConsoleLogger {
    fn fit_start(&mut self, info: &FitInfo) {
        self.batches = info.steps_per_epoch as u64;
        self.epochs = info.config.train.epochs;
        self.val_is_test = !info.config.data.has_val_split();
    }

    fn epoch_start(&mut self, epoch: i64) {
        if !self.show_bars {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(self.batches), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:25}] {pos}/{len} {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn batch_end(&mut self, s: &StepInfo) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.3} acc {:.3} {:.0} img/s", s.loss, s.acc, s.img_per_s));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, e: &EpochInfo) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "epoch {:>3}/{}  train loss {:.4} acc {:.4}  {} loss {:.4} acc {:.4}{}  lr {:.2e}  {:.0} img/s  {:.1}s",
            e.epoch,
            self.epochs,
            e.train_loss,
            e.train_acc,
            if self.val_is_test { "test" } else { "val" },
            e.val.loss,
            e.val.acc,
            if e.is_best { " *" } else { "  " },
            e.lr,
            e.img_per_s,
            e.epoch_secs
        );
        self.rows.push((e.epoch, e.train_loss, e.train_acc, e.val.loss, e.val.acc, e.img_per_s, e.epoch_secs));
    }

    fn fit_end(&mut self, test: &EvalResult) {
        if self.rows.is_empty() {
            return;
        }
        let total: f64 = self.rows.iter().map(|r| r.6).sum();
        let median_ips = median(&self.rows.iter().map(|r| r.5).collect::<Vec<_>>()).unwrap_or(0.0);
        let best = if self.val_is_test {
            "-".to_string() // no validation split: nothing was chosen on the test split
        } else {
            format!("{:.2}%", self.rows.iter().map(|r| r.4).fold(0.0, f64::max) * 100.0)
        };
        eprintln!("\n| epochs run | train time | best val acc | test acc | test loss | median img/s |");
        eprintln!("|-----------:|-----------:|-------------:|---------:|----------:|-------------:|");
        eprintln!(
            "| {:>10} | {:>9.1}s | {:>12} | {:>7.2}% | {:>9.4} | {:>12.0} |",
            self.rows.len(),
            total,
            best,
            test.acc * 100.0,
            test.loss,
            median_ips
        );
        if self.val_is_test {
            eprintln!(
                "(data.val_split = 0: no validation split, so each epoch was scored on the test split and no `best` \
                 checkpoint was kept; the last epoch's test accuracy is the figure to report)"
            );
        }
    }
}
