//! Integration tests: the emulator in-process (and its binary), driven by the real
//! `aws-sdk-kms` and `aws-sdk-sts`, with signatures checked by an independent implementation
//! (aws-lc-rs).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod auth;
mod binary;
mod faults;
mod keys;
mod signing;
mod sts;
mod support;
