//! Dotted node names: validation and prefix matching by whole components.

/// Whether `name` is a valid node name: one or more dot-separated
/// components, each of `[a-z0-9_]+`.
pub(crate) fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Whether `name` is `prefix` or lies below it by whole components
/// (`kern.polling` covers `kern.polling.burst`, not `kern.pollingx`).
/// The empty prefix covers every name.
pub(crate) fn is_at_or_below(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Every proper ancestor of `name`: `a.b.c` gives `a` and `a.b`.
pub(crate) fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        assert!(is_valid("kern.polling.burst"));
        assert!(is_valid("dev.tap0.rx_missed"));
        assert!(!is_valid(""));
        assert!(!is_valid("kern..hz"));
        assert!(!is_valid("kern.hz."));
        assert!(!is_valid(".kern"));
        assert!(!is_valid("Kern.hz"));
        assert!(!is_valid("kern.h-z"));
    }

    #[test]
    fn prefix_by_components() {
        assert!(is_at_or_below("kern.polling.burst", "kern.polling"));
        assert!(is_at_or_below("kern.polling", "kern.polling"));
        assert!(is_at_or_below("kern.polling", ""));
        assert!(!is_at_or_below("kern.pollingx", "kern.polling"));
        assert!(!is_at_or_below("kern", "kern.polling"));
    }

    #[test]
    fn ancestors_in_order() {
        let all: Vec<_> = ancestors("a.b.c").collect();
        assert_eq!(all, ["a", "a.b"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
