//! Who this agent is: instance id and Auto Scaling group, from config
//! overrides, IMDSv2 and, as a last resort, the Auto Scaling API.

use std::time::Duration;

use aws_config::imds;
use aws_config::provider_config::ProviderConfig;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{DimensionKey, IdentityOverrides};
use crate::window::Dimension;

/// The resolved identity; `None` means unknown (e.g. not in an ASG).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: Option<String>,
    pub autoscaling_group: Option<String>,
}

const IMDS_INSTANCE_ID: &str = "/latest/meta-data/instance-id";
const IMDS_TAGS: &str = "/latest/meta-data/tags/instance";
const IMDS_ASG_TAG: &str = "/latest/meta-data/tags/instance/aws:autoscaling:groupName";

/// What to say when IMDS cannot be reached: the classic cause on EC2 is a
/// container behind a hop limit of 1, which drops the token PUT's answer.
const IMDS_HINT: &str = "if this runs in a container on EC2, the instance metadata hop limit \
     is probably 1: raise it with `aws ec2 modify-instance-metadata-options --instance-id <id> \
     --http-put-response-hop-limit 2 --http-tokens required`; off EC2, set instance_id, \
     autoscaling_group and region under [identity] in the config";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "cannot reach the instance metadata service (IMDSv2) for {what}: {detail}; {IMDS_HINT}"
    )]
    ImdsUnreachable { what: &'static str, detail: String },
    #[error("instance metadata service answered {status} for {path}")]
    ImdsStatus { path: &'static str, status: u16 },
}

/// Which identity values the configured dimension sets need.
pub fn needs(sets: &[Vec<DimensionKey>]) -> (bool, bool) {
    let any = |k| sets.iter().any(|s| s.contains(&k));
    (
        any(DimensionKey::InstanceId),
        any(DimensionKey::AutoScalingGroupName),
    )
}

/// An IMDS client on the agent's own HTTP stack. It honours
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (and the rest of the SDK's IMDS
/// settings) from the environment; it only ever speaks IMDSv2.
pub fn imds_client(http: SharedHttpClient) -> imds::Client {
    imds::Client::builder()
        .configure(&ProviderConfig::default().with_http_client(http))
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .max_attempts(3)
        .build()
}

/// Reads one IMDS path; `Ok(None)` for 404 (not there).
async fn imds_get(
    client: &imds::Client,
    path: &'static str,
    what: &'static str,
) -> Result<Option<String>, IdentityError> {
    match client.get(path).await {
        Ok(v) => Ok(Some(String::from(v).trim().to_owned())),
        Err(imds::client::error::ImdsError::ErrorResponse(r)) => {
            let status = r.response().status().as_u16();
            if status == 404 {
                Ok(None)
            } else {
                Err(IdentityError::ImdsStatus { path, status })
            }
        }
        Err(e) => Err(IdentityError::ImdsUnreachable {
            what,
            detail: error_chain(&e),
        }),
    }
}

/// Resolves the identity values the dimension sets need. Overrides win; IMDS
/// is only asked for what is missing.
pub async fn resolve(
    overrides: &IdentityOverrides,
    need_instance: bool,
    need_asg: bool,
    imds: &imds::Client,
    autoscaling: impl AsyncFnOnce(&str) -> Result<Option<String>, String>,
) -> Result<Identity, IdentityError> {
    let mut id = Identity {
        instance_id: overrides.instance_id.as_ref().map(|v| v.0.clone()),
        autoscaling_group: overrides.autoscaling_group.as_ref().map(|v| v.0.clone()),
    };
    // The instance id is needed for the ASG lookup too.
    if id.instance_id.is_none() && (need_instance || (need_asg && id.autoscaling_group.is_none())) {
        id.instance_id = imds_get(imds, IMDS_INSTANCE_ID, "the instance id").await?;
    }
    if need_asg && id.autoscaling_group.is_none() {
        id.autoscaling_group = match imds_get(imds, IMDS_ASG_TAG, "the Auto Scaling group").await? {
            Some(asg) => Some(asg),
            // Tags in metadata are on but the group tag is absent: not in an ASG.
            None if imds_get(imds, IMDS_TAGS, "instance tags").await?.is_some() => None,
            // Tags in metadata are off: ask the Auto Scaling API.
            None => match &id.instance_id {
                Some(instance) => match autoscaling(instance).await {
                    Ok(asg) => asg,
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            "Cannot look up the Auto Scaling group (instance tags are not in \
                             metadata and DescribeAutoScalingInstances failed); the \
                             AutoScalingGroupName dimension set is skipped. Enable instance tags \
                             in metadata or allow autoscaling:DescribeAutoScalingInstances"
                        );
                        None
                    }
                },
                None => None,
            },
        };
    }
    Ok(id)
}

/// The SDK configuration on the agent's HTTP client. Without a region
/// override the loader's own default chain (environment, profile, IMDS) finds
/// the region; endpoint and credentials come from the standard chain too.
pub async fn sdk_config(overrides: &IdentityOverrides) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::publish::http_client());
    if let Some(r) = &overrides.region {
        loader = loader.region(aws_types::region::Region::new(r.0.clone()));
    }
    loader.load().await
}

/// Resolves what `sets` need: overrides, then IMDS, then the Auto Scaling API.
pub async fn lookup(
    overrides: &IdentityOverrides,
    sets: &[Vec<DimensionKey>],
    sdk: &aws_config::SdkConfig,
) -> Result<Identity, IdentityError> {
    let (need_instance, need_asg) = needs(sets);
    let http = sdk
        .http_client()
        .unwrap_or_else(crate::publish::http_client);
    resolve(
        overrides,
        need_instance,
        need_asg,
        &imds_client(http),
        async |instance: &str| asg_from_api(&aws_sdk_autoscaling::Client::new(sdk), instance).await,
    )
    .await
}

/// `DescribeAutoScalingInstances` for one instance.
pub async fn asg_from_api(
    client: &aws_sdk_autoscaling::Client,
    instance_id: &str,
) -> Result<Option<String>, String> {
    let out = client
        .describe_auto_scaling_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(out
        .auto_scaling_instances()
        .first()
        .and_then(|i| i.auto_scaling_group_name())
        .map(str::to_owned))
}

fn value(key: DimensionKey, id: &Identity) -> Option<&String> {
    match key {
        DimensionKey::InstanceId => id.instance_id.as_ref(),
        DimensionKey::AutoScalingGroupName => id.autoscaling_group.as_ref(),
    }
}

/// The dimension sets that can be filled in for this identity: the
/// configured ones whose values are known. When none is left (the default
/// `[["AutoScalingGroupName"]]` on an instance outside any group), the agent
/// publishes per instance rather than nothing.
pub fn effective_sets(sets: &[Vec<DimensionKey>], id: &Identity) -> Vec<Vec<DimensionKey>> {
    let known: Vec<Vec<DimensionKey>> = sets
        .iter()
        .filter(|set| set.iter().all(|k| value(*k, id).is_some()))
        .cloned()
        .collect();
    if known.is_empty() && !sets.is_empty() && id.instance_id.is_some() {
        vec![vec![DimensionKey::InstanceId]]
    } else {
        known
    }
}

/// Fills in the dimension sets. A set whose value is unknown is skipped with
/// one INFO line; see [`effective_sets`] for the per-instance fallback.
pub fn dimension_sets(sets: &[Vec<DimensionKey>], id: &Identity) -> Vec<Vec<Dimension>> {
    for set in sets {
        if let Some(key) = set.iter().find(|k| value(**k, id).is_none()) {
            tracing::info!(
                dimension_set = ?set,
                "{key} is unknown (not in an Auto Scaling group, or not on EC2); this dimension set is skipped"
            );
        }
    }
    let effective = effective_sets(sets, id);
    if !effective.is_empty() && !sets.contains(&effective[0]) {
        tracing::info!("No configured dimension set applies; publishing per instance (InstanceId)");
    }
    effective
        .iter()
        .map(|set| {
            set.iter()
                .map(|k| Dimension {
                    name: k.to_string(),
                    value: value(*k, id).cloned().unwrap_or_default(),
                })
                .collect()
        })
        .collect()
}

/// An error and its sources on one line: SDK errors hide the useful part
/// (connection refused, timeout) several levels down.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_skip_only_their_set() {
        let sets = vec![
            vec![DimensionKey::InstanceId],
            vec![DimensionKey::AutoScalingGroupName],
            vec![],
        ];
        let id = Identity {
            instance_id: Some("i-1".into()),
            autoscaling_group: None,
        };
        let d = dimension_sets(&sets, &id);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0][0].value, "i-1");
        assert!(d[1].is_empty());
    }

    #[test]
    fn outside_a_group_the_default_falls_back_to_the_instance() {
        let sets = vec![vec![DimensionKey::AutoScalingGroupName]];
        let lone = Identity {
            instance_id: Some("i-1".into()),
            autoscaling_group: None,
        };
        assert_eq!(
            effective_sets(&sets, &lone),
            vec![vec![DimensionKey::InstanceId]]
        );
        let d = dimension_sets(&sets, &lone);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0][0].name.as_str(), d[0][0].value.as_str()),
            ("InstanceId", "i-1")
        );
        let member = Identity {
            autoscaling_group: Some("web".into()),
            ..lone
        };
        assert_eq!(effective_sets(&sets, &member), sets);
        assert!(effective_sets(&sets, &Identity::default()).is_empty());
    }

    #[test]
    fn needs_follow_the_sets() {
        assert_eq!(needs(&[vec![DimensionKey::InstanceId]]), (true, false));
        assert_eq!(needs(&[vec![]]), (false, false));
    }
}
