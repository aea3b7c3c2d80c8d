//! LRANGE index arithmetic, as a pure function.

/// The inclusive window `[first, last]` that Redis's `LRANGE key start end` reads from a list of
/// `len` items, or `None` when it reads nothing.
///
/// A negative index counts from the tail (-1 is the last item); then `start` is raised to 0; the
/// window is empty when `start > end` or `start >= len`; `end` is cut to `len - 1`. No index is
/// ever an error, and nothing overflows, for any `i64` input.
///
/// ```
/// use storage_core::raw::lrange_window;
/// assert_eq!(lrange_window(10, -3, -1), Some((7, 9)));
/// assert_eq!(lrange_window(10, 0, -1), Some((0, 9)));
/// assert_eq!(lrange_window(10, 5, 2), None);
/// ```
pub fn lrange_window(len: u64, start: i64, end: i64) -> Option<(u64, u64)> {
    if len == 0 {
        return None;
    }
    // Work in i128 so that `len + index` cannot overflow for any u64 length.
    let len = i128::from(len);
    let mut start = i128::from(start);
    let mut end = i128::from(end);
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    let start = start.max(0);
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as u64, end as u64))
}

#[cfg(test)]
mod tests {
    use super::lrange_window;

    #[test]
    fn lrange_table() {
        // (len, start, end, expected)
        type Row = (u64, i64, i64, Option<(u64, u64)>);
        let table: &[Row] = &[
            (0, 0, -1, None),
            (0, 0, 0, None),
            (1, 0, 0, Some((0, 0))),
            (1, 0, -1, Some((0, 0))),
            (1, -1, -1, Some((0, 0))),
            (1, 1, 1, None),
            (5, 0, -1, Some((0, 4))),
            (5, 0, 100, Some((0, 4))),
            (5, -100, 100, Some((0, 4))),
            (5, -100, -100, None),
            (5, -100, 0, Some((0, 0))),
            (5, 2, 1, None),
            (5, -2, -1, Some((3, 4))),
            (5, -1, -2, None),
            (5, 4, 4, Some((4, 4))),
            (5, 5, 10, None),
            (5, 3, -3, None),
            (5, 2, -3, Some((2, 2))),
            (5, -5, -5, Some((0, 0))),
            (5, -6, -5, Some((0, 0))),
            (5, -6, -6, None),
            (10, -3, -1, Some((7, 9))),
            (10, 1, 3, Some((1, 3))),
            (5, i64::MIN, i64::MAX, Some((0, 4))),
            (5, i64::MAX, i64::MAX, None),
            (5, i64::MIN, i64::MIN, None),
            (5, 0, i64::MIN, None),
            (u64::MAX, -1, -1, Some((u64::MAX - 1, u64::MAX - 1))),
            (
                u64::MAX,
                i64::MAX,
                -1,
                Some((i64::MAX as u64, u64::MAX - 1)),
            ),
        ];
        for &(len, start, end, want) in table {
            assert_eq!(
                lrange_window(len, start, end),
                want,
                "len={len} start={start} end={end}"
            );
        }
    }
}
