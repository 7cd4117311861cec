//! Table tests for defaulting.
