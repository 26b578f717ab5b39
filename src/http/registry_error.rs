//! Registry error bodies: `{"errors":[{"code":..,"message":..,"detail":..}]}`.

use serde::{Deserialize, Serialize};

/// One entry of a registry `errors` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}
