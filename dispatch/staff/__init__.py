"""The staff console: community workers log in here to run the community."""
