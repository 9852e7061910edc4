//! Analysis of finished runs (reads run directories; never trains).

pub mod compare;
