//! Pareto front of (compression ratio, top-1) points, both maximized.

use std::cmp::Ordering;

/// Indices of the Pareto-optimal points when **both** coordinates are maximized.
///
/// A point `p = (x, y)` is on the front when no other point `q` has
/// `q.x >= p.x` and `q.y >= p.y` with at least one of the two strictly greater.
/// Consequences:
///
/// * exact duplicates do not dominate each other, so every copy of a
///   front point is returned;
/// * of two points with the same ratio, only the one with the higher top-1
///   is on the front (and vice versa for equal top-1);
/// * points with a NaN coordinate are never on the front and never dominate.
///
/// The returned indices are ordered by increasing `x`, then decreasing `y`,
/// then increasing index, which is the order in which a step line through
/// the front is drawn (along the front, `y` never increases as `x` grows).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let valid = |p: &(f64, f64)| !p.0.is_nan() && !p.1.is_nan();
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| valid(&points[i]))
        .filter(|&i| {
            let (x, y) = points[i];
            !points
                .iter()
                .enumerate()
                .any(|(j, q)| j != i && valid(q) && q.0 >= x && q.1 >= y && (q.0 > x || q.1 > y))
        })
        .collect();
    front.sort_by(|&a, &b| {
        let (pa, pb) = (points[a], points[b]);
        pa.0.partial_cmp(&pb.0)
            .unwrap_or(Ordering::Equal)
            .then(pb.1.partial_cmp(&pa.1).unwrap_or(Ordering::Equal))
            .then(a.cmp(&b))
    });
    front
}

/// Vertices of the staircase that bounds the region dominated by `front`.
///
/// `front` must be ordered as returned by [`pareto_front`] (increasing x,
/// decreasing y). From each front point the line drops vertically to the
/// next point's top-1, then runs horizontally to the next point.
pub(crate) fn step_line(points: &[(f64, f64)], front: &[usize]) -> Vec<(f64, f64)> {
    let mut line: Vec<(f64, f64)> = Vec::with_capacity(front.len() * 2);
    for (k, &i) in front.iter().enumerate() {
        let p = points[i];
        if k > 0 {
            let prev = *line.last().expect("line is non-empty after first point");
            let corner: (f64, f64) = (prev.0, p.1);
            if corner != prev {
                line.push(corner);
            }
        }
        if line.last() != Some(&p) {
            line.push(p);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<usize>) -> Vec<usize> {
        v.sort_unstable();
        v
    }

    #[test]
    fn empty_and_single() {
        assert!(pareto_front(&[]).is_empty());
        assert_eq!(pareto_front(&[(1.0, 76.0)]), vec![0]);
    }

    #[test]
    fn textbook_case() {
        // (1,76) fp32, (4,75.9) good, (8,75.5) good, (8,74.0) dominated by (8,75.5),
        // (3,75.0) dominated by (4,75.9), (16,70) good.
        let pts = [
            (1.0, 76.0),
            (4.0, 75.9),
            (8.0, 75.5),
            (8.0, 74.0),
            (3.0, 75.0),
            (16.0, 70.0),
        ];
        assert_eq!(pareto_front(&pts), vec![0, 1, 2, 5]);
    }

    #[test]
    fn order_is_by_increasing_ratio() {
        let pts = [(16.0, 70.0), (1.0, 76.0), (8.0, 75.5)];
        assert_eq!(pareto_front(&pts), vec![1, 2, 0]);
    }

    #[test]
    fn single_dominating_point() {
        let pts = [(2.0, 50.0), (10.0, 90.0), (5.0, 80.0), (1.0, 10.0)];
        assert_eq!(pareto_front(&pts), vec![1]);
    }

    #[test]
    fn ties_in_one_coordinate() {
        // Same ratio: only the higher top-1 survives.
        assert_eq!(pareto_front(&[(4.0, 70.0), (4.0, 71.0)]), vec![1]);
        // Same top-1: only the higher ratio survives.
        assert_eq!(pareto_front(&[(4.0, 70.0), (8.0, 70.0)]), vec![1]);
    }

    #[test]
    fn duplicates_are_all_kept() {
        let pts = [(4.0, 70.0), (4.0, 70.0), (2.0, 60.0)];
        assert_eq!(sorted(pareto_front(&pts)), vec![0, 1]);
        // Duplicates of a dominated point are all dropped.
        let pts = [(4.0, 70.0), (2.0, 60.0), (2.0, 60.0)];
        assert_eq!(pareto_front(&pts), vec![0]);
    }

    #[test]
    fn nan_points_are_ignored() {
        let pts = [(f64::NAN, 99.0), (2.0, 60.0), (4.0, f64::NAN)];
        assert_eq!(pareto_front(&pts), vec![1]);
    }

    #[test]
    fn all_points_on_front() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 100.0 - i as f64)).collect();
        assert_eq!(pareto_front(&pts), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn step_line_goes_down_then_right() {
        let pts = [(1.0, 76.0), (8.0, 75.0), (16.0, 70.0)];
        let front = pareto_front(&pts);
        assert_eq!(
            step_line(&pts, &front),
            vec![
                (1.0, 76.0),
                (1.0, 75.0),
                (8.0, 75.0),
                (8.0, 70.0),
                (16.0, 70.0)
            ]
        );
        // Duplicates do not produce zero-length segments.
        let pts = [(1.0, 76.0), (1.0, 76.0)];
        assert_eq!(step_line(&pts, &pareto_front(&pts)), vec![(1.0, 76.0)]);
    }
}
