//! The open sessions, in the order they opened, indexed by contact: finding the sessions of
//! the sender of a stanza is a hash lookup, not a walk over every session the engine holds
//! (a client of 10,000 contacts spent 140 µs per stanza of a stranger on that walk).

use super::Open;
use esession_negotiate::BareJid;
use std::collections::HashMap;

/// The sessions, oldest first, with the positions of each contact's.
#[derive(Default)]
pub(super) struct Sessions {
    list: Vec<Open>,
    /// Each contact's positions in `list`, ascending. A session's peer never changes.
    by_peer: HashMap<BareJid, Vec<usize>>,
}

impl Sessions {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Open> {
        self.list.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Open> {
        self.list.iter_mut()
    }

    /// Adds a session (the newest).
    pub(super) fn push(&mut self, o: Open) {
        self.by_peer.entry(o.est.peer().to_bare()).or_default().push(self.list.len());
        self.list.push(o);
        self.check();
    }

    /// Takes out the session at `i` (later positions move down by one, as in a `Vec`).
    pub(super) fn remove(&mut self, i: usize) -> Open {
        let o = self.list.remove(i);
        let bare = o.est.peer().to_bare();
        if let Some(v) = self.by_peer.get_mut(&bare) {
            v.retain(|&x| x != i);
            if v.is_empty() {
                self.by_peer.remove(&bare);
            }
        }
        if i < self.list.len() {
            for v in self.by_peer.values_mut() {
                for x in v.iter_mut().filter(|x| **x > i) {
                    *x -= 1;
                }
            }
        }
        self.check();
        o
    }

    /// Keeps the sessions `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl FnMut(&Open) -> bool) {
        let before = self.list.len();
        self.list.retain(keep);
        if self.list.len() != before {
            self.reindex();
        }
        self.check();
    }

    /// Takes every session out, oldest first.
    pub(super) fn take_all(&mut self) -> Vec<Open> {
        self.by_peer.clear();
        std::mem::take(&mut self.list)
    }

    /// The positions of `peer`'s sessions, oldest first.
    pub(super) fn of(&self, peer: &BareJid) -> &[usize] {
        self.by_peer.get(peer).map_or(&[], Vec::as_slice)
    }

    /// The newest session of `peer` that `pick` accepts.
    pub(super) fn newest_of(&self, peer: &BareJid, mut pick: impl FnMut(&Open) -> bool) -> Option<usize> {
        self.of(peer).iter().rev().copied().find(|&i| pick(&self.list[i]))
    }

    /// The oldest session of `peer` that `pick` accepts.
    pub(super) fn oldest_of(&self, peer: &BareJid, mut pick: impl FnMut(&Open) -> bool) -> Option<usize> {
        self.of(peer).iter().copied().find(|&i| pick(&self.list[i]))
    }

    /// In debug builds (every test), that the index says exactly where each contact's
    /// sessions are.
    fn check(&self) {
        #[cfg(debug_assertions)]
        {
            let mut rebuilt: HashMap<BareJid, Vec<usize>> = HashMap::new();
            for (i, o) in self.list.iter().enumerate() {
                rebuilt.entry(o.est.peer().to_bare()).or_default().push(i);
            }
            debug_assert_eq!(rebuilt, self.by_peer, "the session index is out of step");
        }
    }

    fn reindex(&mut self) {
        self.by_peer.clear();
        for (i, o) in self.list.iter().enumerate() {
            self.by_peer.entry(o.est.peer().to_bare()).or_default().push(i);
        }
    }
}

impl std::ops::Index<usize> for Sessions {
    type Output = Open;
    fn index(&self, i: usize) -> &Open {
        &self.list[i]
    }
}

impl std::ops::IndexMut<usize> for Sessions {
    fn index_mut(&mut self, i: usize) -> &mut Open {
        &mut self.list[i]
    }
}
