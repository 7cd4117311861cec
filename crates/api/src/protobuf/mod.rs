//! Placeholder: this module is being written.
pub fn decode_body(_body: &[u8]) -> Result<serde_json::Value, String> {
    Err("protobuf bodies are not decoded yet".into())
}
