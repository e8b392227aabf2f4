//! AWS documents as Berth keeps them, typed: every modeled member of what users register and
//! get back as they gave it (task definitions, overrides, a service's load balancers and
//! placement, ELB actions and conditions). Generated from the botocore models by
//! `gen/shapes.py`; a test fails when they drift from the models.

pub mod ecs;
pub mod elb;

#[cfg(test)]
mod tests {
    /// The generated shapes are what the generator makes of the models now.
    #[test]
    fn generated_shapes_match_the_models() {
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let out = std::process::Command::new("python3")
            .arg(format!("{dir}/gen/shapes.py"))
            .arg("--check")
            .output()
            .expect("python3 runs the generator");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
