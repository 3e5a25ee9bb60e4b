import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope.Inspector

// The right-hand inspector (about 380 px wide) for the selected node: a header (kind, title,
// layer, position, activation, influence), its input and output connections (each row
// clickable: nodeActivated(index)) and, for feature nodes, the feature card. Everything below
// the header scrolls. The caller sets the node's facts and hands in the models it owns.
Rectangle {
    id: inspector

    property InspectorColors colors: InspectorColors {}
    property bool hasNode: false
    property string nodeKind // "feature", "neuron" (or "unit": the model's own), "error" ("other units"), "embedding", "logit"
    // A node with a card: a transcoder feature, or one of the model's units (its card from a
    // store of the model's units, when there is one).
    readonly property bool carded: nodeKind === "feature" || nodeKind === "neuron" || nodeKind === "unit"
    property string title // e.g. the label, "L3 #918", or the token
    property string nodeId
    property int nodeLayer: 0
    property int nodePosition: 0
    property real activation: NaN // NaN: none
    // Two different numbers, named apart: the node's own influence on the logits (w^T of the
    // path sums), and the cumulative share of the graph's influence up to this node (nodes
    // sorted by influence; what the node threshold compares and the JSON's "influence" field).
    property real influence: NaN // NaN: none
    property real cumulativeShare: NaN
    property ConnectionsModel inputs: null
    property ConnectionsModel outputs: null
    property FeatureCardData card: null
    // Why a node with a card shows none (a unit graph without its store); empty otherwise.
    property string cardNote
    // A feature's card shown on its own (a feature the graph does not hold): no position,
    // activation or connections.
    property bool standalone: false
    // More sections of the feature card, below it (the explorer's global weights).
    property alias cardSections: cardSectionsColumn.data

    signal nodeActivated(int index)

    // Scrolls the inspector so that `target` (an item inside it) is at the top, as far as the
    // content reaches.
    function scrollToItem(target) {
        const flick = scroll.contentItem
        const y = target.mapToItem(flick.contentItem, 0, 0).y - inspector.colors.padding
        flick.contentY = Math.max(0, Math.min(y, flick.contentHeight - flick.height))
    }

    implicitWidth: 380
    color: colors.panel
    border.color: colors.border

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: 1
        spacing: 0

        // Header
        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: header.implicitHeight + 2 * inspector.colors.padding
            color: inspector.colors.panelHeader

            ColumnLayout {
                id: header
                anchors.fill: parent
                anchors.margins: inspector.colors.padding
                spacing: 4

                RowLayout {
                    Layout.fillWidth: true
                    spacing: inspector.colors.spacing
                    Rectangle {
                        visible: inspector.hasNode
                        Layout.preferredWidth: kindLabel.implicitWidth + 10
                        Layout.preferredHeight: kindLabel.implicitHeight + 4
                        radius: height / 2
                        color: inspector.colors.kindColor(inspector.nodeKind)
                        Label {
                            id: kindLabel
                            anchors.centerIn: parent
                            text: inspector.nodeKind
                            font.pointSize: inspector.colors.smallSize
                            color: inspector.colors.panel
                        }
                    }
                    Label {
                        objectName: "inspectorTitle"
                        Layout.fillWidth: true
                        text: inspector.hasNode ? inspector.title : "Nothing selected"
                        textFormat: Text.PlainText
                        elide: Text.ElideRight
                        font.bold: true
                        font.pointSize: inspector.colors.titleSize
                        color: inspector.hasNode ? inspector.colors.text : inspector.colors.textFaint
                    }
                }
                Label {
                    visible: inspector.hasNode
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    font.pointSize: inspector.colors.smallSize
                    color: inspector.colors.textMuted
                    text: {
                        const parts = []
                        if (inspector.nodeKind !== "embedding")
                            parts.push("layer " + inspector.nodeLayer)
                        if (inspector.standalone)
                            return parts.concat(["not in this graph"]).join(" · ")
                        parts.push("position " + inspector.nodePosition)
                        if (!isNaN(inspector.activation))
                            parts.push("activation " + inspector.colors.formatNumber(inspector.activation, 3))
                        if (!isNaN(inspector.influence))
                            parts.push("influence " + inspector.colors.formatNumber(inspector.influence, 3))
                        if (!isNaN(inspector.cumulativeShare))
                            parts.push("cumulative share " + inspector.colors.formatNumber(inspector.cumulativeShare, 3))
                        return parts.join(" · ")
                    }
                }
                Label {
                    visible: inspector.hasNode && inspector.nodeId.length > 0
                    text: inspector.nodeId
                    font.family: inspector.colors.monoFamily
                    font.pointSize: inspector.colors.smallSize - 1
                    color: inspector.colors.textFaint
                }
            }
        }
        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: 1
            color: inspector.colors.divider
        }

        ScrollView {
            id: scroll
            Layout.fillWidth: true
            Layout.fillHeight: true
            visible: inspector.hasNode
            contentWidth: availableWidth
            clip: true

            ColumnLayout {
                width: scroll.availableWidth
                spacing: inspector.colors.padding

                Item { Layout.preferredHeight: 0 }
                FeatureCard {
                    objectName: "featureCard"
                    visible: inspector.carded && (inspector.cardNote === "" || (inspector.card !== null && inspector.card.hasRecord))
                    Layout.fillWidth: true
                    Layout.leftMargin: inspector.colors.padding
                    Layout.rightMargin: inspector.colors.padding
                    colors: inspector.colors
                    card: inspector.card
                }
                Label {
                    objectName: "cardNote"
                    visible: inspector.carded && inspector.cardNote !== ""
                    Layout.fillWidth: true
                    Layout.leftMargin: inspector.colors.padding
                    Layout.rightMargin: inspector.colors.padding
                    text: inspector.cardNote
                    wrapMode: Text.Wrap
                    textFormat: Text.PlainText
                    color: inspector.colors.textMuted
                }
                ColumnLayout {
                    id: cardSectionsColumn
                    visible: inspector.carded && children.length > 0
                    Layout.fillWidth: true
                    Layout.leftMargin: inspector.colors.padding
                    Layout.rightMargin: inspector.colors.padding
                    spacing: inspector.colors.spacing
                }
                Rectangle {
                    visible: inspector.carded && !inspector.standalone
                    Layout.fillWidth: true
                    Layout.preferredHeight: 1
                    color: inspector.colors.divider
                }
                ConnectionList {
                    objectName: "inputConnections"
                    visible: !inspector.standalone
                    Layout.fillWidth: true
                    Layout.leftMargin: inspector.colors.padding
                    Layout.rightMargin: inspector.colors.padding
                    colors: inspector.colors
                    title: "Inputs"
                    model: inspector.inputs
                    onActivated: nodeIndex => inspector.nodeActivated(nodeIndex)
                }
                ConnectionList {
                    objectName: "outputConnections"
                    visible: !inspector.standalone
                    Layout.fillWidth: true
                    Layout.leftMargin: inspector.colors.padding
                    Layout.rightMargin: inspector.colors.padding
                    colors: inspector.colors
                    title: "Outputs"
                    model: inspector.outputs
                    onActivated: nodeIndex => inspector.nodeActivated(nodeIndex)
                }
                Item { Layout.preferredHeight: inspector.colors.padding }
            }
        }
        Item {
            visible: !inspector.hasNode
            Layout.fillHeight: true
        }
    }
}
