//! Reading `-f FILE|DIR|-` inputs into objects: multi-document YAML or JSON, `kind: List`
//! flattened, directories read like kubectl (`.yaml`, `.yml`, `.json` files, sorted by name).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// One object from a manifest, with where it came from (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The file name as the user gave it, or `STDIN`.
    pub source: String,
    /// The object as written.
    pub object: Value,
}

/// Reads every `-f` argument; `-` is stdin, directories are read one level deep unless `recursive`.
pub fn load(paths: &[String], recursive: bool) -> Result<Vec<Manifest>, Error> {
    let mut out = Vec::new();
    for arg in paths {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::ReadManifest {
                    path: PathBuf::from("STDIN"),
                    source,
                })?;
            push_parsed(&mut out, &text, "STDIN")?;
            continue;
        }
        let path = Path::new(arg);
        let meta = std::fs::metadata(path).map_err(|source| Error::ReadManifest {
            path: path.into(),
            source,
        })?;
        let files = if meta.is_dir() {
            files_in(path, recursive)?
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::ReadManifest {
                path: file.clone(),
                source,
            })?;
            push_parsed(&mut out, &text, &file.display().to_string())?;
        }
    }
    Ok(out)
}

fn push_parsed(out: &mut Vec<Manifest>, text: &str, source: &str) -> Result<(), Error> {
    for object in parse(text, source)? {
        out.push(Manifest {
            source: source.to_string(),
            object,
        });
    }
    Ok(())
}

fn files_in(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, Error> {
    let read_err = |source| Error::ReadManifest {
        path: dir.into(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                files.extend(files_in(&entry, true)?);
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Splits a YAML/JSON stream into objects; empty documents are skipped and `*List` objects
/// with `items` are replaced by their items.
pub fn parse(text: &str, source: &str) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|source_err| Error::ParseManifest {
            source_name: source.to_string(),
            source: source_err,
        })?;
        flatten(value, &mut objects);
    }
    Ok(objects)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Object(mut map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    flatten(item, out);
                }
            }
        }
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let text = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n";
        let objs = parse(text, "x.yaml").expect("parses");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["metadata"]["name"], "b");
    }

    #[test]
    fn flattens_lists() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "PodList", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}]}
        ]}"#;
        let objs = parse(text, "x.json").expect("parses");
        let names: Vec<&Value> = objs.iter().map(|o| &o["metadata"]["name"]).collect();
        assert_eq!(names, [&json!("a"), &json!("b")]);
    }

    #[test]
    fn reports_bad_yaml_with_its_source() {
        let err = parse("a: [1,\n", "bad.yaml").expect_err("invalid");
        assert!(
            err.to_string().starts_with("error parsing bad.yaml"),
            "{err}"
        );
    }
}
