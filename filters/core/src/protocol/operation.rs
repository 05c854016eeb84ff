//! Protocol operations as families, so one policy covers every protocol
//! version and every endpoint shape.
//!
//! The recipe names operations by URL path (`/mcp/tools/call`,
//! `/a2a/tasks/send`), but real clients POST every method to one endpoint
//! with the method in the JSON-RPC body, and A2A renamed its methods twice
//! (0.1 `tasks/send`, 0.3 `message/send`, 1.0 `SendMessage`). Policies are
//! therefore keyed by [`Operation`], derived from the body when there is one
//! and from the recipe's path otherwise.

/// A protocol operation family. The canonical name is the recipe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    McpInitialize,
    McpToolsList,
    McpToolsCall,
    McpResourcesList,
    McpResourcesRead,
    McpPromptsList,
    McpPromptsGet,
    /// A2A: send a message / task (non-streaming).
    A2aSend,
    /// A2A: send and stream updates.
    A2aStream,
    A2aGetTask,
    A2aCancelTask,
    A2aResubscribe,
    A2aListTasks,
    A2aPushConfig,
    A2aExtendedCard,
}

impl Operation {
    pub const ALL: [Operation; 15] = {
        use Operation::*;
        [
            McpInitialize,
            McpToolsList,
            McpToolsCall,
            McpResourcesList,
            McpResourcesRead,
            McpPromptsList,
            McpPromptsGet,
            A2aSend,
            A2aStream,
            A2aGetTask,
            A2aCancelTask,
            A2aResubscribe,
            A2aListTasks,
            A2aPushConfig,
            A2aExtendedCard,
        ]
    };

    /// Family of a JSON-RPC method name, across MCP revisions and A2A versions.
    pub fn from_method(method: &str) -> Option<Self> {
        use Operation::*;
        Some(match method {
            "initialize" => McpInitialize,
            "tools/list" => McpToolsList,
            "tools/call" => McpToolsCall,
            "resources/list" => McpResourcesList,
            "resources/read" => McpResourcesRead,
            "prompts/list" => McpPromptsList,
            "prompts/get" => McpPromptsGet,
            // Every A2A version's names: one table, shared with the REST
            // binding (crate::protocol::a2a).
            m => return crate::protocol::a2a::jsonrpc_method(m).map(|(op, _)| op),
        })
    }

    /// Family named by one of the recipe's per-operation paths
    /// (`/mcp/tools/call`, `/a2a/tasks/sendSubscribe`, ...). Also accepts the
    /// canonical name alone (`tools/call`), which is how configs name them.
    pub fn from_recipe_path(path: &str) -> Option<Self> {
        let path = super::http::path_only(path);
        let name = path
            .strip_prefix("/mcp/")
            .or_else(|| path.strip_prefix("/a2a/"))
            .unwrap_or(path)
            .trim_end_matches('/');
        // Canonical names that are no protocol's method name
        // (`tasks/pushNotificationConfig`) still name their family.
        Self::from_method(name)
            .or_else(|| Self::ALL.into_iter().find(|op| op.canonical_name() == name))
    }

    /// The recipe's name for the family: `tools/call`, `tasks/send`, ...
    pub fn canonical_name(self) -> &'static str {
        use Operation::*;
        match self {
            McpInitialize => "initialize",
            McpToolsList => "tools/list",
            McpToolsCall => "tools/call",
            McpResourcesList => "resources/list",
            McpResourcesRead => "resources/read",
            McpPromptsList => "prompts/list",
            McpPromptsGet => "prompts/get",
            A2aSend => "tasks/send",
            A2aStream => "tasks/sendSubscribe",
            A2aGetTask => "tasks/get",
            A2aCancelTask => "tasks/cancel",
            A2aResubscribe => "tasks/resubscribe",
            A2aListTasks => "tasks/list",
            A2aPushConfig => "tasks/pushNotificationConfig",
            A2aExtendedCard => "agent/getAuthenticatedExtendedCard",
        }
    }

    pub fn is_a2a(self) -> bool {
        self.canonical_name().starts_with("tasks/") || self == Operation::A2aExtendedCard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_a2a_version_maps_to_one_family() {
        for m in ["tasks/send", "message/send", "SendMessage"] {
            assert_eq!(Operation::from_method(m), Some(Operation::A2aSend), "{m}");
        }
        for m in [
            "tasks/sendSubscribe",
            "message/stream",
            "SendStreamingMessage",
        ] {
            assert_eq!(Operation::from_method(m), Some(Operation::A2aStream), "{m}");
        }
        assert_eq!(
            Operation::from_method("tasks/pushNotificationConfig/set"),
            Some(Operation::A2aPushConfig)
        );
        assert_eq!(
            Operation::from_method("CreateTaskPushNotificationConfig"),
            Some(Operation::A2aPushConfig)
        );
        assert_eq!(Operation::from_method("tools/call "), None);
    }

    #[test]
    fn recipe_paths_map_to_families() {
        assert_eq!(
            Operation::from_recipe_path("/mcp/tools/call"),
            Some(Operation::McpToolsCall)
        );
        assert_eq!(
            Operation::from_recipe_path("/mcp/tools/call/"),
            Some(Operation::McpToolsCall)
        );
        assert_eq!(
            Operation::from_recipe_path("/a2a/tasks/send?x=1"),
            Some(Operation::A2aSend)
        );
        assert_eq!(
            Operation::from_recipe_path("/a2a/tasks/sendSubscribe"),
            Some(Operation::A2aStream)
        );
        assert_eq!(
            Operation::from_recipe_path("tools/call"),
            Some(Operation::McpToolsCall)
        );
        assert_eq!(Operation::from_recipe_path("/mcp"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_recipe_path(op.canonical_name()), Some(op));
        }
        assert!(Operation::A2aStream.is_a2a());
        assert!(!Operation::McpToolsCall.is_a2a());
    }
}
