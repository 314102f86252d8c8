//! ROS 2 bags (MCAP): reading camera topics and writing the published topics for the offline mode.
