//! `tags.json`: each tag with the sorted paths of its modules.

use anyhow::Result;

use crate::rows::FileOutput;
use crate::writers::Artifact;

use super::{Context, Sink};

pub struct Tags;

impl Sink for Tags {
    fn name(&self) -> &'static str {
        "tags"
    }

    fn render(&self, cx: &mut Context<'_>, _: &[Artifact]) -> Result<Vec<Artifact>> {
        Ok(vec![render_tags(cx.outputs)])
    }
}

/// `tags.json`: each tag with the sorted paths of its modules.
fn render_tags(outputs: &[FileOutput]) -> Artifact {
    let mut by_tag: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for output in outputs {
        for tag in &output.entry.labels.tags {
            by_tag.entry(tag).or_default().push(&output.entry.path);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&by_tag).expect("tags serialize");
    bytes.push(b'\n');
    Artifact::new("tags.json", by_tag.len(), bytes)
}
