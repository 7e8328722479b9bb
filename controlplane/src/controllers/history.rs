//! ControllerRevisions: the template history that StatefulSets and DaemonSets keep, one
//! `apps/v1` ControllerRevision per distinct pod template, named `OWNER-<hash>`, controlled by
//! its owner and numbered by `revision`.
//!
//! A revision's `data` is the patch `kubectl rollout undo` applies to the owner as a strategic
//! merge patch (kubectl's `StatefulSetRollbacker` and `DaemonSetRollbacker` PATCH
//! `history.Data.Raw` as it is): `{"spec": {"template": {..., "$patch": "replace"}}}`, as
//! kube-controller-manager's `getPatch` writes it. Going back to an older template bumps that
//! revision's number instead of writing a new one, so `kubectl rollout history` lists it last.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::pods::{controller_of, owner_reference};
use super::rollout;

/// The label holding a revision's hash (`ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The label on pods naming the revision they were made from (a StatefulSet's pods hold the
/// revision's name, a DaemonSet's its hash, as in Kubernetes).
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// The owner of a history, as the helpers need it.
pub struct Owner<'a> {
    /// `apps/v1`.
    pub api_version: &'a str,
    /// `StatefulSet` or `DaemonSet`.
    pub kind: &'a str,
    /// The owner's metadata (name, namespace, uid).
    pub meta: &'a ObjectMeta,
    /// Its current `spec.template`.
    pub template: &'a PodTemplateSpec,
    /// `status.collisionCount`.
    pub collision_count: i32,
}

/// The revision of the owner's current template, and the collision count it took.
#[derive(Debug, Clone)]
pub struct Synced {
    /// The revision of `spec.template` (the update revision).
    pub update: ControllerRevision,
    /// `status.collisionCount` after naming it.
    pub collision_count: i32,
}

/// The patch a revision stores for `template`.
pub fn patch_of(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(o) = t.as_object_mut() {
        o.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision stores.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = revision.data.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// The hash naming a revision with `data` (`HashControllerRevision`: FNV-32a of the data, then
/// of the collision count when there is one, made safe for names).
pub fn hash(data: &Value, collision_count: i32) -> String {
    rollout::template_hash(
        &serde_json::to_vec(data).unwrap_or_default(),
        collision_count,
    )
}

/// A revision's hash: its label, or its name's suffix.
pub fn hash_of(revision: &ControllerRevision) -> String {
    revision
        .labels()
        .get(HASH_LABEL)
        .cloned()
        .unwrap_or_else(|| {
            let name = revision.name_any();
            name.rsplit('-').next().unwrap_or_default().to_string()
        })
}

/// The owner's revisions, oldest first.
pub async fn list(
    api: &Api<ControllerRevision>,
    uid: &str,
) -> Result<Vec<ControllerRevision>, kube::Error> {
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    revisions.sort_by_key(|r| (r.revision.unwrap_or(0), r.name_any()));
    Ok(revisions)
}

/// Finds or writes the revision of the owner's template among `revisions` (updated in place):
/// an equal revision that is not the newest becomes the newest; a new template gets the next
/// number, hashed again on a name collision with someone else's revision.
pub async fn sync(
    api: &Api<ControllerRevision>,
    owner: &Owner<'_>,
    revisions: &mut Vec<ControllerRevision>,
) -> Result<Synced, kube::Error> {
    let data = patch_of(owner.template);
    let newest = revisions
        .iter()
        .filter_map(|r| r.revision)
        .max()
        .unwrap_or(0);
    if let Some(i) = revisions.iter().rposition(|r| r.data.0 == data) {
        if revisions[i].revision.unwrap_or(0) < newest {
            let bumped = api
                .patch(
                    &revisions[i].name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"revision": newest + 1})),
                )
                .await?;
            revisions[i] = bumped;
        }
        return Ok(Synced {
            update: revisions[i].clone(),
            collision_count: owner.collision_count,
        });
    }
    let mut collision_count = owner.collision_count;
    loop {
        let revision = new_revision(owner, &data, newest + 1, collision_count);
        match api.create(&PostParams::default(), &revision).await {
            Ok(created) => {
                revisions.push(created.clone());
                return Ok(Synced {
                    update: created,
                    collision_count,
                });
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&revision.name_any()).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == owner.meta.uid.as_ref());
                if ours && existing.data.0 == data {
                    revisions.push(existing.clone());
                    return Ok(Synced {
                        update: existing,
                        collision_count,
                    });
                }
                collision_count += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A new revision object (`NewControllerRevision`): the template's labels plus the hash.
fn new_revision(
    owner: &Owner<'_>,
    data: &Value,
    number: i64,
    collisions: i32,
) -> ControllerRevision {
    let hash = hash(data, collisions);
    let mut labels: BTreeMap<String, String> = owner
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let name = owner.meta.name.clone().unwrap_or_default();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: owner.meta.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(
                owner.api_version,
                owner.kind,
                owner.meta,
            )]),
            ..ObjectMeta::default()
        },
        data: RawExtension(data.clone()),
        revision: Some(number),
    }
}

/// The revisions to delete so at most `limit` unused ones stay (`revisionHistoryLimit`): the
/// oldest of those no pod and no status names (by name or hash in `live`).
pub fn surplus<'r>(
    revisions: &'r [ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<&'r ControllerRevision> {
    let mut idle: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()) && !live.contains(&hash_of(r)))
        .collect();
    idle.sort_by_key(|r| r.revision.unwrap_or(0));
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    let extra = idle.len().saturating_sub(keep);
    idle.truncate(extra);
    idle
}

/// Deletes [`surplus`] revisions.
pub async fn cleanup(
    api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    live: &HashSet<String>,
    limit: i32,
) -> Result<(), kube::Error> {
    for revision in surplus(revisions, live, limit) {
        match api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    fn revision(name: &str, number: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: RawExtension(json!({})),
            revision: Some(number),
        }
    }

    #[test]
    fn data_is_a_replacing_strategic_patch_of_the_template() {
        let t = template("a:1");
        let data = patch_of(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:1"
        );
        let back = template_of(&revision_with(data)).unwrap();
        assert_eq!(back, t);
    }

    fn revision_with(data: Value) -> ControllerRevision {
        ControllerRevision {
            data: RawExtension(data),
            ..revision("x", 1)
        }
    }

    #[test]
    fn hash_follows_the_template_and_the_collision_count() {
        let a = patch_of(&template("a:1"));
        let b = patch_of(&template("b:1"));
        assert_eq!(hash(&a, 0), hash(&a, 0));
        assert_ne!(hash(&a, 0), hash(&b, 0));
        assert_ne!(hash(&a, 0), hash(&a, 1));
        assert!(hash(&a, 0).chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn surplus_is_the_oldest_unused_beyond_the_limit() {
        let revisions = [
            revision("web-a", 1),
            revision("web-b", 2),
            revision("web-c", 3),
            revision("web-d", 4),
        ];
        let live: HashSet<String> = ["web-a".to_string(), "d".to_string()].into();
        let names = |limit| -> Vec<String> {
            surplus(&revisions, &live, limit)
                .iter()
                .map(|r| r.name_any())
                .collect()
        };
        assert_eq!(names(1), ["web-b"]);
        assert_eq!(names(0), ["web-b", "web-c"]);
        assert!(names(10).is_empty());
    }
}
