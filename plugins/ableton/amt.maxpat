{
  "patcher": {
    "fileversion": 1,
    "appversion": {
      "major": 8,
      "minor": 6,
      "revision": 0,
      "architecture": "x64",
      "modernui": 1
    },
    "classnamespace": "box",
    "rect": [
      100.0,
      100.0,
      840.0,
      260.0
    ],
    "openinpresentation": 1,
    "default_fontsize": 10.0,
    "boxes": [
      {
        "box": {
          "id": "obj-1",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            20,
            50,
            22
          ],
          "text": "midiin",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-2",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            60,
            55,
            22
          ],
          "text": "midiout"
        }
      },
      {
        "box": {
          "id": "obj-3",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            120,
            20,
            60,
            22
          ],
          "text": "generate",
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            10,
            10,
            80,
            22
          ]
        }
      },
      {
        "box": {
          "id": "obj-4",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            200,
            20,
            70,
            22
          ],
          "text": "task infill",
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            100,
            10,
            75,
            22
          ]
        }
      },
      {
        "box": {
          "id": "obj-5",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            280,
            20,
            95,
            22
          ],
          "text": "task accompany",
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            180,
            10,
            95,
            22
          ]
        }
      },
      {
        "box": {
          "id": "obj-6",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            385,
            20,
            85,
            22
          ],
          "text": "task continue",
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            280,
            10,
            90,
            22
          ]
        }
      },
      {
        "box": {
          "id": "obj-7",
          "maxclass": "live.numbox",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            480,
            20,
            44,
            15
          ],
          "outlettype": [
            "",
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            10,
            40,
            44,
            15
          ],
          "parameter_enable": 1,
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "amt variations",
              "parameter_shortname": "Variations",
              "parameter_type": 1,
              "parameter_mmin": 1,
              "parameter_mmax": 8,
              "parameter_initial_enable": 1,
              "parameter_initial": [
                3
              ]
            }
          },
          "varname": "variations"
        }
      },
      {
        "box": {
          "id": "obj-8",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            480,
            45,
            110,
            22
          ],
          "text": "prepend variations",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-9",
          "maxclass": "live.numbox",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            600,
            20,
            44,
            15
          ],
          "outlettype": [
            "",
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            60,
            40,
            44,
            15
          ],
          "parameter_enable": 1,
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "amt temperature",
              "parameter_shortname": "Temp",
              "parameter_type": 0,
              "parameter_mmin": 0.1,
              "parameter_mmax": 2.0,
              "parameter_initial_enable": 1,
              "parameter_initial": [
                1.0
              ]
            }
          },
          "varname": "temperature"
        }
      },
      {
        "box": {
          "id": "obj-10",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            600,
            45,
            120,
            22
          ],
          "text": "prepend temperature",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-11",
          "maxclass": "live.numbox",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            730,
            20,
            44,
            15
          ],
          "outlettype": [
            "",
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            110,
            40,
            44,
            15
          ],
          "parameter_enable": 1,
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "amt grid",
              "parameter_shortname": "Grid",
              "parameter_type": 0,
              "parameter_mmin": 0.0,
              "parameter_mmax": 4.0,
              "parameter_initial_enable": 1,
              "parameter_initial": [
                0.25
              ]
            }
          },
          "varname": "grid"
        }
      },
      {
        "box": {
          "id": "obj-12",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            730,
            45,
            80,
            22
          ],
          "text": "prepend grid",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-13",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            120,
            110,
            110,
            22
          ],
          "text": "js amt_bridge.js",
          "outlettype": [
            "",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-14",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            120,
            160,
            230,
            22
          ],
          "text": "node.script amt_client.js @autostart 1",
          "outlettype": [
            "",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-15",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            260,
            110,
            300,
            22
          ],
          "text": "",
          "outlettype": [
            ""
          ],
          "presentation": 1,
          "presentation_rect": [
            10,
            62,
            360,
            22
          ]
        }
      },
      {
        "box": {
          "id": "obj-16",
          "maxclass": "comment",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            200,
            420,
            20
          ],
          "text": "amt: set the clip's loop brace over the span to write, then Generate.",
          "presentation": 1,
          "presentation_rect": [
            10,
            86,
            360,
            20
          ]
        }
      }
    ],
    "lines": [
      {
        "patchline": {
          "source": [
            "obj-1",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-3",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-4",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-5",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-6",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-8",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-10",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-12",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-7",
            0
          ],
          "destination": [
            "obj-8",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-9",
            0
          ],
          "destination": [
            "obj-10",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-11",
            0
          ],
          "destination": [
            "obj-12",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-13",
            0
          ],
          "destination": [
            "obj-14",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-14",
            0
          ],
          "destination": [
            "obj-13",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-13",
            1
          ],
          "destination": [
            "obj-15",
            0
          ]
        }
      }
    ],
    "dependency_cache": [
      {
        "name": "amt_bridge.js",
        "bootpath": ".",
        "type": "TEXT",
        "implicit": 1
      },
      {
        "name": "amt_client.js",
        "bootpath": ".",
        "type": "TEXT",
        "implicit": 1
      }
    ]
  }
}
