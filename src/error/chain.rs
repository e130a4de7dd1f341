//! An error shown with its chain of causes.

use std::fmt;

/// An error with its chain of causes, "a: b: c". A cause whose text the message already ends
/// with (a library error that prints its own source as well) is not repeated.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let next = error.to_string();
            if !next.is_empty() && !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            cause = error.source();
        }
        f.write_str(&text)
    }
}
