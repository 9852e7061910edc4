//! `train::eval`: the metrics computed from the final logits.

use microvision::train::eval::top_k_accuracy;
use tch::Tensor;

#[test]
fn top_k_accuracy_by_hand() {
    let logits = Tensor::from_slice(&[
        10f32, 9., 8., 7., 6., 5., // label 0: first
        10., 9., 8., 7., 6., 5., // label 5: sixth, outside the top 5
        1., 2., 3., 4., 5., 6., // label 2: fourth
    ])
    .view([3, 6]);
    let labels = Tensor::from_slice(&[0i64, 5, 2]);
    assert!((top_k_accuracy(&logits, &labels, 1) - 1.0 / 3.0).abs() < 1e-12);
    assert!((top_k_accuracy(&logits, &labels, 5) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(top_k_accuracy(&logits, &labels, 10), 1.0, "k above the class count: every label is in");
    assert_eq!(top_k_accuracy(&logits.narrow(0, 0, 0), &labels.narrow(0, 0, 0), 5), 0.0);
}
