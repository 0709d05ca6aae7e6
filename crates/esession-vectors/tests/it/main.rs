//! In-process tests of the checker: every vector of the shared folder and of the repository
//! passes with no unexplained skip (`vectors`); the checker itself fails on purpose-broken
//! vectors and refuses what it does not understand (`mutations`, `negatives`); the defects of
//! issue 17.4 stay fixed (`layouts`: keys of the gajim layout, piggybacked content, identity
//! padding).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod layouts;
mod mutations;
mod negatives;
mod structure;
mod support;
mod vectors;
