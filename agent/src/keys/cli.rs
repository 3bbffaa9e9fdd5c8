//! `seam keys ...`: the command line of the key layer.
