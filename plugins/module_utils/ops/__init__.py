# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The do/undo steps of modules, one file per module that has steps: each runs the changes on a
host and undoes what a failed run leaves half made. The decisions are pure code (vmplan,
scaling, poolplan, migration, image_policy, network.ipam); these files carry them out."""
