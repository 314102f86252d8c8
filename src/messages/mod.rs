//! Plain Rust mirrors of the published ROS 2 messages and their CDR encoding.
