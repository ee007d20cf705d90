//! The service controller of a cloud provider: a LoadBalancer Service gets `spec.loadBalancerIP`
//! (or the next IP of 203.0.113.0/24) in `status.loadBalancer.ingress`.

use serde_json::json;

use super::Ctx;
use super::util;
use crate::ApiError;

pub fn reconcile(ctx: &mut Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(svc) = ctx.c.get("v1", "services", ns, name) else { return Ok(()) };
    if svc["spec"]["type"] != "LoadBalancer" || util::deleting(&svc) {
        return Ok(());
    }
    let asked = svc["spec"]["loadBalancerIP"].as_str().filter(|s| !s.is_empty());
    let have = svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str();
    if have.is_some() && (asked.is_none() || asked == have) {
        return Ok(());
    }
    let want = match asked {
        Some(ip) => ip.to_string(),
        None => {
            ctx.state.next_lb_ip += 1;
            format!("203.0.113.{}", ctx.state.next_lb_ip % 250 + 1)
        }
    };
    ctx.c.patch_status_by(
        "v1",
        "services",
        ns,
        name,
        &json!({"status": {"loadBalancer": {"ingress": [{"ip": want, "ipMode": "VIP"}]}}}),
        "service-controller",
    )?;
    Ok(())
}
