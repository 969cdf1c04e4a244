//! Progress bars: one for the whole sweep and one for the method running in the current
//! cell (methods report through the core [`wb_core::Progress`] trait).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// The bars of one run.
pub struct Bars {
    multi: MultiProgress,
    /// Cells of the sweep.
    pub cells: ProgressBar,
    /// The current cell's phase (method progress, evaluation, timing).
    pub step: ProgressBar,
}

impl Bars {
    /// Bars for `total` cells; `visible = false` draws nothing (tests, `--quiet`).
    pub fn new(total: u64, visible: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let cells = multi.add(ProgressBar::new(total));
        cells.set_style(
            ProgressStyle::with_template(
                "{prefix:>8.bold} [{bar:30.cyan/blue}] {pos}/{len} cells  {elapsed_precise} (eta {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        cells.set_prefix("sweep");
        let step = multi.add(ProgressBar::new(0));
        step.set_style(
            ProgressStyle::with_template("{prefix:>8.dim} {spinner} {wide_msg} {pos}/{len}")
                .expect("static template"),
        );
        step.set_prefix("cell");
        step.enable_steady_tick(Duration::from_millis(200));
        Self { multi, cells, step }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        self.step.finish_and_clear();
        self.cells.finish();
    }
}

/// Adapts the step bar to the core [`wb_core::Progress`] trait.
pub struct StepProgress<'a>(pub &'a ProgressBar);

impl wb_core::Progress for StepProgress<'_> {
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
        self.0.set_position(0);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
}
