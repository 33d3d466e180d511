//! The limit on documents a member creates per hour, enforced by admission
//! (a creation is a document's first changes) across all documents.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::lock;

/// When each member created documents recently (a sliding hour).
#[derive(Debug)]
pub(crate) struct CreationLimit {
    pub per_hour: usize,
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl CreationLimit {
    pub fn new(per_hour: usize) -> Self {
        Self { per_hour, recent: Mutex::default() }
    }

    /// Count a creation by `participant`; false when over the hourly limit.
    pub fn allow(&self, participant: &str) -> bool {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut recent = lock(&self.recent);
        let times = recent.entry(participant.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) > hour) {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_creates_up_to_the_limit() {
        let limit = CreationLimit::new(2);
        assert!(limit.allow("ana") && limit.allow("ana"));
        assert!(!limit.allow("ana"), "the third within the hour is refused");
        assert!(limit.allow("bo"), "others are counted apart");
    }
}
