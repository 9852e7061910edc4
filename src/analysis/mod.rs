//! Analysis of finished runs (reads run directories; never trains): history, plots, the HTML
//! report and the comparison of runs.

pub mod compare;
pub mod explain;
pub mod plots;
pub mod report;
pub mod study;
