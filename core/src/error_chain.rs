//! Showing an error together with its causes, on one line.

use std::error::Error;

/// `error`'s message followed by each of its sources', joined by `": "`: how a person sees
/// a failure whose cause is carried as [`Error::source`] rather than in its message.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::BackendError;

    #[test]
    fn a_cause_is_shown_once_after_its_context() {
        let e = BackendError::Io {
            location: "/srv/x.json".into(),
            source: std::io::Error::from_raw_os_error(13),
        };
        assert_eq!(e.to_string(), "/srv/x.json");
        assert_eq!(
            super::error_chain(&e),
            "/srv/x.json: Permission denied (os error 13)"
        );
    }
}
