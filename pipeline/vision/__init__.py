"""Images as a kind of data: the decoded-image cache, decoding one file, augmentation and TTA views, prediction over views, and `pipeline check`."""
