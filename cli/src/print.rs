//! Output formatting shared by the verbs: kubectl's column layout (Go's `text/tabwriter`
//! semantics), server-side `meta.k8s.io/v1` Tables, ages, and `-o yaml|json` documents.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// Lays out tab-separated text as Go's `text/tabwriter` does (kubectl uses it for every table).
///
/// A cell is text terminated by a tab; the text after a line's last tab is not part of any
/// column and is never padded. A column's width is taken over a *block*: the run of
/// consecutive lines that have a cell in that column, so a line without tabs (a section title
/// in `describe`) starts fresh alignment below it.
#[derive(Clone, Copy, Debug)]
pub struct TabWriter {
    /// Minimal width of a cell, padding included.
    pub min_width: usize,
    /// Spaces added after the widest cell of a column.
    pub padding: usize,
}

impl TabWriter {
    /// kubectl `get`: `tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)`.
    pub const GET: TabWriter = TabWriter {
        min_width: 6,
        padding: 3,
    };
    /// kubectl `describe`: `tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)`.
    pub const DESCRIBE: TabWriter = TabWriter {
        min_width: 0,
        padding: 2,
    };

    /// Formats `text` (lines of tab-separated cells).
    pub fn format(&self, text: &str) -> String {
        let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format_block(&lines, 0, lines.len(), &mut widths, &mut out);
        out
    }

    fn format_block(
        &self,
        lines: &[Vec<&str>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // lines line0..this have no cell in this column: write them with the widths so far
            self.write_lines(lines, line0, this, widths, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(display_width(lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format_block(lines, line0, this, widths, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(lines, line0, line1, widths, out);
    }

    fn write_lines(
        &self,
        lines: &[Vec<&str>],
        from: usize,
        to: usize,
        widths: &[usize],
        out: &mut String,
    ) {
        for (i, line) in lines.iter().enumerate().take(to).skip(from) {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if j + 1 < line.len() {
                    let width = widths.get(j).copied().unwrap_or(0);
                    let pad = width.saturating_sub(display_width(cell));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // the text's last line has no newline of its own
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
    }
}

fn display_width(s: &str) -> usize {
    s.chars().count()
}

/// A `meta.k8s.io/v1` Table as the API server returns it for `get`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Column names, types and priorities (0: always shown, more: only with `-o wide`).
    #[serde(default)]
    pub column_definitions: Vec<ColumnDefinition>,
    /// One row per object.
    #[serde(default)]
    pub rows: Vec<TableRow>,
}

/// One column of a [`Table`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ColumnDefinition {
    /// The human-readable name (`Up-to-date`), printed upper-cased.
    pub name: String,
    /// 0 for default columns; 1 and more for `-o wide` only.
    #[serde(default)]
    pub priority: i32,
}

/// One row of a [`Table`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TableRow {
    /// Cell values, one per column definition.
    #[serde(default)]
    pub cells: Vec<Value>,
    /// The object (by default `PartialObjectMetadata`) the row describes.
    #[serde(default)]
    pub object: Option<Value>,
}

/// How to print a [`Table`].
#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    /// Show columns of every priority (`-o wide`).
    pub wide: bool,
    /// Add a leading `NAMESPACE` column from each row's object (`-A`).
    pub with_namespace: bool,
    /// Prefix names with `kind.group/` (several types in one `get`).
    pub kind_prefix: Option<String>,
    /// Add a trailing `LABELS` column (`--show-labels`).
    pub show_labels: bool,
    /// Omit the header line (`--no-headers`).
    pub no_headers: bool,
}

impl Table {
    /// A `NAME AGE` table for servers (or kinds) that send plain objects instead of Tables.
    pub fn from_objects(objects: &[Value], now: jiff::Timestamp) -> Self {
        let column = |name: &str| ColumnDefinition {
            name: name.to_string(),
            priority: 0,
        };
        Table {
            column_definitions: vec![column("Name"), column("Age")],
            rows: objects
                .iter()
                .map(|obj| TableRow {
                    cells: vec![
                        obj["metadata"]["name"].clone(),
                        Value::String(age(obj["metadata"]["creationTimestamp"].as_str(), now)),
                    ],
                    object: Some(obj.clone()),
                })
                .collect(),
        }
    }

    /// Renders the table as kubectl does (header upper-cased, columns padded by 3).
    pub fn render(&self, opts: &TableOptions) -> String {
        let shown: Vec<usize> = self
            .column_definitions
            .iter()
            .enumerate()
            .filter(|(_, c)| opts.wide || c.priority == 0)
            .map(|(i, _)| i)
            .collect();
        let mut text = String::new();
        if !opts.no_headers {
            let mut header: Vec<String> = Vec::new();
            if opts.with_namespace {
                header.push("NAMESPACE".into());
            }
            header.extend(
                shown
                    .iter()
                    .map(|&i| self.column_definitions[i].name.to_uppercase()),
            );
            if opts.show_labels {
                header.push("LABELS".into());
            }
            text.push_str(&header.join("\t"));
            text.push('\n');
        }
        for row in &self.rows {
            let meta = row.object.as_ref().map(|o| &o["metadata"]);
            let mut cells: Vec<String> = Vec::new();
            if opts.with_namespace {
                cells.push(
                    meta.and_then(|m| m["namespace"].as_str())
                        .unwrap_or("")
                        .to_string(),
                );
            }
            for (n, &i) in shown.iter().enumerate() {
                let cell = row.cells.get(i).map_or_else(String::new, cell_text);
                match (&opts.kind_prefix, n) {
                    (Some(prefix), 0) => cells.push(format!("{prefix}/{cell}")),
                    _ => cells.push(cell),
                }
            }
            if opts.show_labels {
                cells.push(format_labels(meta.map(|m| &m["labels"])));
            }
            // a tab inside a cell would shift every column after it
            let cells: Vec<String> = cells
                .into_iter()
                .map(|c| c.replace(['\t', '\n'], " "))
                .collect();
            text.push_str(&cells.join("\t"));
            text.push('\n');
        }
        TabWriter::GET.format(&text)
    }
}

/// A cell as kubectl prints it: strings verbatim, numbers and booleans as JSON, null `<none>`.
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

/// `k=v,k2=v2` sorted by key, or `<none>`, as kubectl's `labels.FormatLabels`.
pub fn format_labels(labels: Option<&Value>) -> String {
    let Some(Value::Object(map)) = labels else {
        return "<none>".to_string();
    };
    if map.is_empty() {
        return "<none>".to_string();
    }
    let sorted: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, cell_text(v))).collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Age since an RFC 3339 timestamp, `<unknown>` when missing or unparseable.
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    match timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

/// kubectl's `duration.HumanDuration`: `45s`, `5m3s`, `3h12m`, `5d`, `2y30d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A `v1` `List` wrapping `items`, as `kubectl get -o yaml|json` prints several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": { "resourceVersion": "" },
    })
}

/// JSON as kubectl prints it: indented by four spaces, with a trailing newline.
pub fn to_json(value: &Value) -> Result<String, Error> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value
        .serialize(&mut ser)
        .map_err(|e| Error::Render(e.to_string()))?;
    let mut text = String::from_utf8(buf).map_err(|e| Error::Render(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// YAML as kubectl prints it (no leading `---`).
pub fn to_yaml(value: &Value) -> Result<String, Error> {
    serde_yaml::to_string(value).map_err(|e| Error::Render(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_pads_columns_but_not_the_last_cell() {
        let out = TabWriter::GET.format("NAME\tREADY\tAGE\nweb-1\t1/1\t5s\nx\t10/10\t100d\n");
        assert_eq!(
            out,
            "NAME    READY   AGE\nweb-1   1/1     5s\nx       10/10   100d\n"
        );
    }

    #[test]
    fn tabwriter_applies_min_width() {
        // "NS" + 3 padding is 5, below kubectl's minimum cell width of 6
        assert_eq!(TabWriter::GET.format("NS\tX\na\tb"), "NS    X\na     b");
    }

    #[test]
    fn tabwriter_blocks_end_at_lines_without_tabs() {
        let text = "Name:\tweb\nService Account:\tdefault\nContainers:\n  web:\n    Image:\tnginx\n    Restart Count:\t0\n";
        assert_eq!(
            TabWriter::DESCRIBE.format(text),
            "Name:             web\nService Account:  default\nContainers:\n  web:\n    Image:          nginx\n    Restart Count:  0\n"
        );
    }

    #[test]
    fn tabwriter_continuation_lines_share_the_column() {
        let text = "Labels:\tapp=web\n\ttier=front\nAnnotations:\t<none>\n";
        assert_eq!(
            TabWriter::DESCRIBE.format(text),
            "Labels:       app=web\n              tier=front\nAnnotations:  <none>\n"
        );
    }

    fn pods_table() -> Table {
        serde_json::from_value(json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "Restarts", "type": "integer", "priority": 0},
                {"name": "IP", "type": "string", "priority": 1},
                {"name": "Nominated Node", "type": "string", "priority": 1},
            ],
            "rows": [
                {"cells": ["solo", "1/1", 0, "127.64.0.2", null],
                 "object": {"metadata": {"name": "solo", "namespace": "default", "labels": {"b": "2", "a": "1"}}}},
                {"cells": ["web-123456", "2/2", 12, "127.64.0.3", "<none>"],
                 "object": {"metadata": {"name": "web-123456", "namespace": "prod"}}},
            ]
        }))
        .expect("table")
    }

    #[test]
    fn table_hides_wide_columns_by_default() {
        let out = pods_table().render(&TableOptions::default());
        assert_eq!(
            out,
            "NAME         READY   RESTARTS\nsolo         1/1     0\nweb-123456   2/2     12\n"
        );
    }

    #[test]
    fn table_wide_shows_all_and_upper_cases_headers() {
        let out = pods_table().render(&TableOptions {
            wide: true,
            ..Default::default()
        });
        assert_eq!(
            out,
            "NAME         READY   RESTARTS   IP           NOMINATED NODE\n\
             solo         1/1     0          127.64.0.2   <none>\n\
             web-123456   2/2     12         127.64.0.3   <none>\n"
        );
    }

    #[test]
    fn table_with_namespace_kind_prefix_and_labels() {
        let opts = TableOptions {
            with_namespace: true,
            kind_prefix: Some("pod".into()),
            show_labels: true,
            ..Default::default()
        };
        let out = pods_table().render(&opts);
        assert_eq!(
            out,
            "NAMESPACE   NAME             READY   RESTARTS   LABELS\n\
             default     pod/solo         1/1     0          a=1,b=2\n\
             prod        pod/web-123456   2/2     12         <none>\n"
        );
    }

    #[test]
    fn fallback_table_has_name_and_age() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("ts");
        let objs = [
            json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
            json!({"metadata": {"name": "b"}}),
        ];
        let out = Table::from_objects(&objs, now).render(&TableOptions::default());
        assert_eq!(out, "NAME   AGE\na      10m\nb      <unknown>\n");
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (3 * 3600 + 12 * 60, "3h12m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (5 * 86400, "5d"),
            (5 * 86400 + 3 * 3600, "5d3h"),
            (100 * 86400, "100d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn json_uses_four_space_indent() {
        assert_eq!(
            to_json(&json!({"a": [1]})).expect("json"),
            "{\n    \"a\": [\n        1\n    ]\n}\n"
        );
    }
}
