//! Numbers of the Google accel class (TPU v4 and v4lite), from tensorflow/tpu
//! `include/linux/accel.h`.

/// Character major of the Google accel class: `/dev/accelN` is 121:N.
pub const ACCEL_MAJOR: u32 = 121;

/// Character major of the upstream DRM accel subsystem (`/dev/accel/accelN`, NPUs and the
/// like). It shares the `accel` sysfs class name with TPUs, so the major tells them apart.
pub const DRM_ACCEL_MAJOR: u32 = 261;

/// The sysfs class both of them register.
pub const ACCEL_CLASS: &str = "accel";
