//! Table tests: for each rule a valid object yields nothing and a broken one yields exactly the
//! field path and message Kubernetes reports.
