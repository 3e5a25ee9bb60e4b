import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope.Inspector

// One direction of a node's connections (a ConnectionsModel): positive edges, strongest first,
// then negative ones; each row a bar as long as its share of the listed |weight|, coloured
// by sign. Clicking a row emits activated(node index). Shows `collapsedLimit` rows per sign
// until "all" is pressed (the model's limit).
ColumnLayout {
    id: list

    required property InspectorColors colors
    property string title
    property ConnectionsModel model: null
    property int collapsedLimit: 8
    property bool expanded: false

    signal activated(int nodeIndex)

    spacing: 2

    // The model's rows per sign follow the toggle.
    function applyLimit() {
        if (list.model)
            list.model.limit = list.expanded ? 0 : list.collapsedLimit
    }
    onModelChanged: applyLimit()
    onExpandedChanged: applyLimit()
    onCollapsedLimitChanged: applyLimit()
    Component.onCompleted: applyLimit()

    RowLayout {
        Layout.fillWidth: true
        spacing: list.colors.spacing

        Label {
            text: list.title
            font.bold: true
            font.pointSize: list.colors.baseSize
            color: list.colors.text
        }
        Label {
            Layout.fillWidth: true
            text: list.model ? ("+" + list.model.positiveCount + " / −" + list.model.negativeCount) : ""
            font.pointSize: list.colors.smallSize
            color: list.colors.textMuted
            elide: Text.ElideRight
        }
        Label {
            objectName: "connectionsToggle"
            visible: list.model !== null && list.model.available > list.model.count
                || list.expanded && list.model !== null && list.model.available > 2 * list.collapsedLimit
            text: list.expanded ? "fewer" : "all " + (list.model ? list.model.available : 0)
            font.pointSize: list.colors.smallSize
            color: list.colors.accent
            TapHandler {
                onTapped: list.expanded = !list.expanded
            }
        }
    }

    Label {
        visible: list.model === null || list.model.available === 0
        text: "none"
        font.pointSize: list.colors.smallSize
        color: list.colors.textFaint
    }

    ListView {
        id: view
        Layout.fillWidth: true
        Layout.preferredHeight: contentHeight
        interactive: false
        model: list.model
        section.property: "positive"
        section.delegate: Label {
            required property string section
            width: view.width
            topPadding: 4
            text: section === "true" ? "excitatory" : "inhibitory"
            font.pointSize: list.colors.smallSize
            font.capitalization: Font.AllUppercase
            color: section === "true" ? list.colors.positive : list.colors.negative
        }

        delegate: Rectangle {
            id: row

            required property int index
            required property int nodeIndex
            required property string nodeId
            required property string kindName
            required property string label
            required property int position
            required property double weight
            required property double share
            required property bool positive

            objectName: "connection_" + nodeIndex
            width: view.width
            height: list.colors.rowHeight
            color: hover.hovered ? list.colors.hover : "transparent"
            radius: 2

            // The bar: share relative to the largest share of the list, behind the text.
            Rectangle {
                anchors.left: parent.left
                anchors.verticalCenter: parent.verticalCenter
                height: parent.height - 6
                width: list.model && list.model.maxShare > 0 ? (row.share / list.model.maxShare) * parent.width : 0
                radius: 2
                color: row.positive ? list.colors.positive : list.colors.negative
                opacity: 0.18
            }
            RowLayout {
                anchors.fill: parent
                anchors.leftMargin: 4
                anchors.rightMargin: 4
                spacing: 6

                Rectangle {
                    Layout.preferredWidth: 7
                    Layout.preferredHeight: 7
                    radius: 3.5
                    color: list.colors.kindColor(row.kindName)
                }
                Label {
                    Layout.fillWidth: true
                    text: row.label
                    textFormat: Text.PlainText
                    elide: Text.ElideRight
                    font.pointSize: list.colors.baseSize
                    font.family: row.kindName === "embedding" || row.kindName === "logit" ? list.colors.monoFamily : ""
                    color: list.colors.text
                }
                Label {
                    text: "@" + row.position
                    font.pointSize: list.colors.smallSize
                    color: list.colors.textFaint
                }
                Label {
                    Layout.preferredWidth: 52
                    horizontalAlignment: Text.AlignRight
                    text: (row.weight > 0 ? "+" : "") + list.colors.formatNumber(row.weight, 3)
                    font.pointSize: list.colors.smallSize
                    font.family: list.colors.monoFamily
                    color: row.positive ? list.colors.positive : list.colors.negative
                }
                Label {
                    Layout.preferredWidth: 36
                    horizontalAlignment: Text.AlignRight
                    text: Math.round(row.share * 100) + "%"
                    font.pointSize: list.colors.smallSize
                    color: list.colors.textMuted
                }
            }

            HoverHandler {
                id: hover
            }
            TapHandler {
                onTapped: list.activated(row.nodeIndex)
            }
            ToolTip.visible: hover.hovered
            ToolTip.delay: 500
            ToolTip.text: row.nodeId + " · weight " + row.weight.toPrecision(4) + " · " + (row.share * 100).toFixed(1)
                          + "% of |weight|"
        }
    }
}
