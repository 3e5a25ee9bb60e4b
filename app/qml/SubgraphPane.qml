import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope
import Circuitscope.Canvas

// The pinned subgraph (Ctrl-click a node to pin it), laid out by Graphviz dot, with its
// supernodes: check pinned nodes, name the group and press Group; rename or ungroup from the
// group's header. Edges between supernodes are the sums of their members' edges.
Panel {
    id: pane

    required property ExplorerController explorer
    property alias view: subgraphView

    title: "Subgraph"
    subtitle: pane.explorer.pinnedCount === 0 ? "Ctrl-click nodes in the graph to pin them here; Shift-click pinned nodes to check them for grouping"
                                              : pane.explorer.pinnedCount + " pinned · "
                                                + pane.explorer.supernodeNames.length + " supernodes"

    headerItems: [
        TextField {
            id: groupName
            objectName: "supernodeNameField"
            Layout.preferredWidth: 150
            placeholderText: "Supernode name"
            selectByMouse: true
            onAccepted: groupButton.clicked()
        },
        Button {
            id: groupButton
            objectName: "groupButton"
            text: "Group " + pane.explorer.checkedCount
            enabled: pane.explorer.checkedCount >= 2
            onClicked: {
                if (pane.explorer.groupChecked(groupName.text) !== "")
                    groupName.text = ""
            }
        },
        Button {
            text: "Clear pins"
            enabled: pane.explorer.pinnedCount > 0
            onClicked: pane.explorer.unpinAll()
        }
    ]

    SplitView {
        anchors.fill: parent
        orientation: Qt.Horizontal

        GraphView {
            id: subgraphView
            objectName: "subgraphView"
            SplitView.fillWidth: true
            SplitView.minimumWidth: 200
            source: pane.explorer.subgraphScene
            captionColor: Theme.text
            captionBackground: Theme.dark ? "#d0262a33" : "#d0ffffff"
            onNodeClicked: (slot, graphIndex, id, modifiers) => pane.explorer.clickNode(id, modifiers)
            // A new layout shows whole.
            Connections {
                target: subgraphView.canvas
                function onSceneChanged() { subgraphView.fitToView() }
            }
        }

        ListView {
            id: list
            objectName: "pinnedList"
            SplitView.preferredWidth: 280
            SplitView.minimumWidth: 180
            clip: true
            model: pane.explorer.subgraph
            section.property: "supernode"
            section.delegate: Rectangle {
                id: header
                required property string section
                width: ListView.view.width
                height: 30
                color: section === "" ? Theme.panelHeader : Theme.supernode
                Label {
                    visible: header.section === ""
                    anchors.verticalCenter: parent.verticalCenter
                    x: Theme.spacing
                    text: "Not grouped"
                    color: Theme.textMuted
                    font.pointSize: Theme.smallSize
                }
                RowLayout {
                    visible: header.section !== ""
                    anchors.fill: parent
                    anchors.leftMargin: Theme.spacing
                    anchors.rightMargin: 4
                    TextField {
                        Layout.fillWidth: true
                        text: header.section
                        font.bold: true
                        background: null
                        selectByMouse: true
                        onAccepted: pane.explorer.renameSupernode(header.section, text)
                        ToolTip.visible: hovered
                        ToolTip.text: "Edit and press Enter to rename"
                    }
                    ToolButton {
                        text: "Ablate"
                        enabled: pane.explorer.interventionsAvailable
                        onClicked: pane.explorer.interventions.add("supernode:" + header.section, "ablate", 0, "")
                    }
                    ToolButton {
                        text: "Ungroup"
                        onClicked: pane.explorer.ungroup(header.section)
                    }
                }
            }
            delegate: ItemDelegate {
                id: row
                required property string nodeId
                required property string label
                required property string kind
                required property bool marked
                required property bool selected
                width: ListView.view.width
                height: 28
                highlighted: selected
                contentItem: RowLayout {
                    spacing: 4
                    CheckBox {
                        checked: row.marked
                        onToggled: pane.explorer.setChecked(row.nodeId, checked)
                        ToolTip.visible: hovered
                        ToolTip.text: "Check nodes, then Group"
                    }
                    Label {
                        Layout.fillWidth: true
                        text: row.label
                        elide: Text.ElideRight
                        color: Theme.text
                        font.pointSize: Theme.smallSize
                    }
                    ToolButton {
                        text: "✕"
                        onClicked: pane.explorer.togglePin(row.nodeId)
                        ToolTip.visible: hovered
                        ToolTip.text: "Unpin"
                    }
                }
                onClicked: pane.explorer.select(nodeId)
            }
        }
    }
}
